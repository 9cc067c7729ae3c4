"""Package list for setuptools: radlens_core, viewer, inference, phantoms (the demo study), and
resources/ installed as radlens_resources. demo_models (retraining the shipped models) stays in
the repository: it is a developer tool, not part of the installed program."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(
        include=["radlens_core", "viewer", "viewer.*", "inference", "inference.*", "phantoms"]
    )
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
