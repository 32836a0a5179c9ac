"""Entry point: ``python run.py [key=value ...]`` or ``python run.py -m key=a,b ...``."""

import sys

import hydra
from omegaconf import DictConfig

import gsi.config
import gsi.pipeline
from gsi.cli import unknown_group_option


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    gsi.pipeline.run(cfg)


if __name__ == "__main__":
    problem = unknown_group_option(sys.argv[1:])
    if problem is not None:
        print(f"gsi: config error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    gsi.config.register()
    main()
