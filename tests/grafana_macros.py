"""The tests expand panel SQL with the product's own expander (trackline/grafana_sql.py)."""

from trackline.grafana_sql import expand, variable_defaults

__all__ = ["expand", "variable_defaults"]
