"""Interoperability with the ASTRA Toolbox and ODL.

* :func:`to_astra` / :func:`from_astra`: ASTRA volume and (vector) projection geometry
  dicts; pure numpy, no ASTRA import needed.
* :func:`to_odl` / :func:`from_odl`: ODL spaces and tomography geometries;
  :func:`as_odl_operator` / :func:`from_odl_operator`: operators in both directions
  (ODL is imported lazily, on first use).
"""

from .astra import from_astra, to_astra
from .odl import OdlOperator, as_odl_operator, from_odl, from_odl_operator, to_odl

__all__ = ["OdlOperator", "as_odl_operator", "from_astra", "from_odl", "from_odl_operator", "to_astra", "to_odl"]
