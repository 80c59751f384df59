"""Run Greengrass V2 components locally from their recipes (tests, and users trying a component).

`Kernel(root, ComponentStore(recipe_dirs, artifact_dirs))` mimics /greengrass/v2: `deploy`,
`remove`, `list`. See kernel.py for what is and is not modelled.
"""

from edge_agent.greengrass_runner.configuration import ConfigurationUpdate
from edge_agent.greengrass_runner.kernel import Kernel, LifecycleError
from edge_agent.greengrass_runner.recipe import Recipe, load_recipe, parse_recipe
from edge_agent.greengrass_runner.store import ComponentStore, ResolutionError

__all__ = [
    "ComponentStore",
    "ConfigurationUpdate",
    "Kernel",
    "LifecycleError",
    "Recipe",
    "ResolutionError",
    "load_recipe",
    "parse_recipe",
]
