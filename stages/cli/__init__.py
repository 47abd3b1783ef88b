"""The command line's parts: its argument parser, the TOML config file, value parsers."""
