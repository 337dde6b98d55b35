"""The bundled policies (YAML files beside this one), installed as valueguard.bundled_policies."""
