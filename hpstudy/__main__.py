"""``python -m hpstudy``."""

from hpstudy.cli import main

main()
