"""Installs the kernel-space packages and the top-level commands (train.py, deblur.py, transfer.py)."""

from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
requirements = [
    line.strip()
    for line in (here / "requirements.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]

setup(
    name="blur-kernel-space",
    version="0.1.0",
    description="Blur kernel space exploration (Tran et al., CVPR 2021): deblurring and blur transfer",
    long_description=(here / "README.md").read_text() if (here / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["models", "models.*", "data", "data.*", "losses", "losses.*", "utils", "utils.*",
                                    "training", "training.*", "deblurring", "deblurring.*",
                                    "transferring", "transferring.*"]),
    py_modules=["train", "deblur", "transfer"],
    install_requires=requirements,
    extras_require={"dev": ["pytest>=7.0", "ruff"]},  # tests and lint: pip install -e ".[dev]"
)
