from pathlib import Path

from setuptools import find_packages, setup

EXTRAS = {
    "s3": ["boto3>=1.34"],
    "sql": ["SQLAlchemy>=2.0", "psycopg[binary]>=3.1", "PyMySQL>=1.1"],
    "sqlcipher": ["SQLAlchemy>=2.0", "sqlcipher3-binary>=0.5"],
    "server": ["starlette>=0.37", "uvicorn>=0.29", "python-multipart>=0.0.9"],
    "http": ["httpx>=0.27"],
    # The sync engine's state database (also what sync and check need on the command line).
    "sync": ["SQLAlchemy>=2.0"],
    "cli": ["click>=8.1", "rich>=13.0", "SQLAlchemy>=2.0"],
    "messenger": [
        "Pillow>=10",
        "SQLAlchemy>=2.0",
        "starlette>=0.37",
        "uvicorn>=0.29",
        "python-multipart>=0.0.9",
        # the command-line client: HTTP to the app, SQLCipher for its local store
        "httpx>=0.27",
        "sqlcipher3-binary>=0.5",
    ],
}
EXTRAS["all"] = sorted({requirement for group in EXTRAS.values() for requirement in group})
EXTRAS["dev"] = [
    "boto3-stubs[s3]>=1.34",
    "httpx>=0.27",
    "hypothesis>=6.100",
    "moto[server]>=5.0",
    "mypy>=1.10",
    "playwright>=1.40",
    "pytest>=8.0",
    "pytest-timeout>=2.3",
    "pytest-xdist>=3.5",
    "tink>=1.10",
    "ruff>=0.5",
]

setup(
    name="persisty-blobs",
    version="0.1.0",
    description="Store and replicate binary data: one interface over memory, directory, SQL, "
    "SQLCipher and S3 stores, presigned browser uploads, client-side encryption and sync.",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",
    packages=find_packages(include=["persisty_blobs", "persisty_blobs.*"]),
    package_data={"persisty_blobs": ["py.typed"]},
    install_requires=["cryptography>=42"],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["persisty-blobs = persisty_blobs.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Typing :: Typed",
    ],
)
