"""Small MaxMind-format databases for tests, built with the mmdb-writer package.

The layouts follow MaxMind's City and ASN databases (the fields the hub reads):
``build_city_db(path, {cidr: (country_iso, country_name, city)})`` and
``build_asn_db(path, {cidr: (asn, org)})``. Use documentation ranges
(192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) with made-up data.
Both are IPv6 databases holding IPv4 networks too, as MaxMind's are.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmdb_writer import MmdbU32, MMDBWriter
from netaddr import IPSet


def _write(path: Path, database_type: str, records: Mapping[str, dict[str, Any]]) -> Path:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=database_type, languages=["en"],
                        description="secmon test data")  # fmt: skip
    for cidr, record in records.items():
        network = ipaddress.ip_network(cidr, strict=False)
        writer.insert_network(IPSet([str(network)]), record)
    tmp = path.with_name(path.name + ".tmp")
    writer.to_db_file(str(tmp))
    tmp.replace(path)  # whole, at once: a hub that re-reads it never sees half a file
    return path


def build_city_db(path: Path, networks: Mapping[str, tuple[str, str, str]]) -> Path:
    """A GeoLite2-City-shaped database at ``path``: per network, its country's ISO code and
    English name and its city's English name."""
    records = {
        cidr: {"country": {"iso_code": iso, "names": {"en": name}}, "city": {"names": {"en": city}}}
        for cidr, (iso, name, city) in networks.items()
    }
    return _write(path, "GeoLite2-City", records)


def build_asn_db(path: Path, networks: Mapping[str, tuple[int, str]]) -> Path:
    """A GeoLite2-ASN-shaped database at ``path``: per network, its AS number and organisation."""
    records = {
        cidr: {"autonomous_system_number": MmdbU32(asn), "autonomous_system_organization": org}
        for cidr, (asn, org) in networks.items()
    }
    return _write(path, "GeoLite2-ASN", records)
