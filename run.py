"""Entry point: ``python run.py [key=value ...]`` or ``python run.py -m key=a,b ...``."""

import sys

import hydra
from omegaconf import DictConfig

import gsi.config
import gsi.pipeline
from gsi.cli import check_command_line


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    gsi.pipeline.run(cfg)


if __name__ == "__main__":
    gsi.config.register()
    check_command_line(sys.argv[1:])
    main()
