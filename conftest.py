"""Test-session settings shared by the unit tests and the notebooks run under nbval.

Everything runs offline and on a fresh cache, so results do not depend on the network or on what
an earlier run left behind. Kernels started by nbval inherit these variables.
"""

import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["ASR_HELPERS_MODE"] = "offline"
os.environ.setdefault("ASR_HELPERS_CACHE", tempfile.mkdtemp(prefix="asr_helpers_cache_"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
