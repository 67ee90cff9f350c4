"""drt's unchanged RestApiDestination, registered as `rest_api_keyed` with an `upsert_key`.

drt diffs a snapshot only into a destination that names its key (`destination.upsert_key`),
and its `rest_api` config has no such field. The key is the join column of drt's
warehouse-side snapshot diff; the destination itself sends exactly as `rest_api` does.
"""

from typing import Literal

from drt.config.base import GenericDestinationConfig
from drt.config.destinations_saas import RestApiDestinationConfig
from drt.destinations.rest_api import RestApiDestination


# drt validates a plugin's config with its own class only when that class is a
# GenericDestinationConfig; the REST API's config supplies every other field.
class KeyedRestApiDestinationConfig(RestApiDestinationConfig, GenericDestinationConfig):
    type: Literal["rest_api_keyed"]  # type: ignore[assignment]
    upsert_key: list[str]


def register() -> None:
    from drt.connectors.registry import register_destination

    register_destination("rest_api_keyed", KeyedRestApiDestinationConfig, RestApiDestination)
