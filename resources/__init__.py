"""Dagster resources: configuration comes from the environment (Dagster EnvVar), with documented defaults."""

from resources.warehouse import B2BPortalResource, WarehouseResource, default_resources

__all__ = ["B2BPortalResource", "WarehouseResource", "default_resources"]
