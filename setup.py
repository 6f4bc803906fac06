"""Which packages the wheel holds. Everything else about the build is in pyproject.toml.

The packages under bot/, conversation/, handlers/ and metrics/, plus the repository's
top-level templates/ and migrations/ folders, shipped inside bot as ``bot.templates`` and
``bot.migrations`` so that an installed kpibot reads them through importlib.resources
(docs/decisions.md says why they stay at the top of the repository). pyproject.toml cannot
list found packages and mapped ones together, hence this file.
"""

from setuptools import find_namespace_packages, setup

MAPPED = {"bot.templates": "templates", "bot.migrations": "migrations"}

# Their subfolders (slack/, text/, versions/…) are packages too, so that their files ship.
inside_mapped = [
    f"{package}.{sub}"
    for package, folder in MAPPED.items()
    for sub in find_namespace_packages(where=folder)
]

setup(
    packages=[
        *find_namespace_packages(include=["bot*", "conversation*", "handlers*", "metrics*"]),
        *MAPPED,
        *inside_mapped,
    ],
    package_dir=MAPPED,
)
