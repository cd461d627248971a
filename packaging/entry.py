"""The frozen binary's entry point (PyInstaller runs this file as __main__)."""

from sandbox_api.cli import main

main()
