"""lumiere-cli: short videos from a Space-Time U-Net diffusion model, after Lumiere (2024).

What `lumiere t2v` (and every generation command) does is `run([Request(...)])`; for frames in
memory instead of files, `weights.load_model` and `pipeline.generate`. Importing this package is
cheap: torch loads when a model does.
"""

__version__ = "0.1.0"

from .choices import Format, Sampler, Task  # noqa: E402
from .config import SampleOptions  # noqa: E402
from .jobs import Listener, Outcome, run  # noqa: E402
from .requests import InputFiles, OutputSpec, Request, StyleSpec  # noqa: E402

__all__ = ["Format", "InputFiles", "Listener", "Outcome", "OutputSpec", "Request", "SampleOptions", "Sampler",
           "StyleSpec", "Task", "run", "__version__"]
