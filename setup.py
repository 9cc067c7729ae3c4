"""Package list for setuptools: viewer, inference, and resources/ installed as radlens_resources."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["viewer", "viewer.*", "inference", "inference.*"])
    + ["radlens_resources"],
    package_dir={"radlens_resources": "resources"},
    package_data={
        "radlens_resources": [
            "**/*.json",
            "**/*.safetensors",
            "**/*.ts",
            "**/*.pt",
            "**/*.md",
            "**/*.qss",
            "**/*.svg",
            "**/*.png",
        ],
    },
    include_package_data=False,
)
