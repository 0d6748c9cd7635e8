"""Ansible-compatible inventories (INI and YAML) and target patterns."""
