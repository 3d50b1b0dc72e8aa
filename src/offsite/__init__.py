"""offsite: Offsite-Tuning with CRaSh emulators, and the analysis that explains why it works.

Data flows one way: model + data -> hidden states -> similarity -> clusters -> layer map -> emulator ->
adapter -> plug-in -> scores. Layers are numbered from 0 (the first transformer block) to L-1.
"""

from .emulator import load_bundle, load_emulator
from .errors import OffsiteError
from .models import load_model

__version__ = "0.1.0"

__all__ = ["OffsiteError", "__version__", "load_bundle", "load_emulator", "load_model"]
