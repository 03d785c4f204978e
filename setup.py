"""Packaging for pilotid; tool configuration lives in pyproject.toml."""
from setuptools import find_packages, setup

setup(
    name="pilotid",
    version="0.1.0",
    description="Run a grid pilot's payload under the end user's own Unix identity "
    "(gLExec, sudo or no switch), with MyProxy or local-file credentials.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=find_packages(include=["pilotid", "pilotid.*"]),
    # The stand-in transformations (buildJob, buildGen, runAthena, runGen) the demo and the
    # tests run, on queues that ask for them (standin_transformations), and the wrapper's
    # bash template.
    package_data={"pilotid.payloads": ["transformations/*", "wrapper.sh"]},
    install_requires=[
        "zope.interface>=5.0",
        "pyOpenSSL>=23.0",
        "cryptography>=41.0",
        "asn1crypto>=1.5",
        "PyJWT>=2.8",
    ],
    extras_require={
        "test": ["pytest>=7", "mock>=5", "hypothesis>=6", "scitokens>=1.8"],
        "docs": ["sphinx>=6", "myst-parser>=1"],
        "lint": ["ruff", "mypy", "import-linter"],
    },
    # the command: a plain script (bin/pilotid says why), not a console-script entry point
    scripts=["bin/pilotid"],
    classifiers=[
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX :: Linux",
        "Topic :: System :: Distributed Computing",
    ],
)
