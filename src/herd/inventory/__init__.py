"""Ansible-compatible inventories (INI and YAML) and target patterns.

``load_inventory(sources)`` reads and checks every source and returns an
``Inventory``; ``Inventory.select(pattern)`` gives the matching ``Host``s.
"""

from herd.inventory.build import load_inventory
from herd.inventory.graph import Group, Inventory

__all__ = ["Group", "Inventory", "load_inventory"]
