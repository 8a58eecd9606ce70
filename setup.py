"""Map the top-level folders into the one ``couponlab`` namespace.

setuptools' ``package-dir`` needs every sub-package listed; this walks each root so a new
instrument family is packaged without editing a list. Works for ``pip install .`` and
``pip install -e .``.
"""

from setuptools import find_packages, setup

ROOTS = {
    "couponlab": "src/couponlab",
    "couponlab.drivers": "drivers",
    "couponlab.simulators": "simulators",
    "couponlab.plans": "plans",
}

packages: list[str] = []
package_dir: dict[str, str] = {}
for package, folder in ROOTS.items():
    package_dir[package] = folder
    packages.append(package)
    for sub in find_packages(folder):
        packages.append(f"{package}.{sub}")
        package_dir[f"{package}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"

setup(packages=packages, package_dir=package_dir)
