import importlib
import subprocess
import sys

import pytest

import viscy_utils

SPEC_NAMES = [
    "viscy_utils.optimizers.configure_adamw_scheduler",
    "viscy_utils.log_images.detach_sample",
    "viscy_utils.log_images.render_images",
    "viscy_utils.mp_utils.get_val_stats",
    "viscy_utils.mp_utils.mp_wrapper",
    "viscy_utils.normalize.hist_clipping",
    "viscy_utils.normalize.zscore",
    "viscy_utils.normalize.unzscore",
    "viscy_utils.tensor_utils.to_numpy",
    "viscy_utils.callbacks.embedding_snapshot.EmbeddingSnapshotCallback",
    "viscy_utils.callbacks.embedding_writer.EmbeddingWriter",
    "viscy_utils.callbacks.online_eval.OnlineEvalCallback",
    "viscy_utils.callbacks.prediction_writer.HCSPredictionWriter",
    "viscy_utils.evaluation.annotation.load_annotation_anndata",
    "viscy_utils.cli.VisCyCLI",
    "viscy_utils.trainer.VisCyTrainer",
    "viscy_utils.cli_utils.format_markdown_table",
    "viscy_utils.cli_utils.load_config",
]


@pytest.mark.parametrize("dotted", SPEC_NAMES)
def test_spec_name_importable(dotted):
    module, name = dotted.rsplit(".", 1)
    assert callable(getattr(importlib.import_module(module), name))


def test_flat_exports_resolve():
    for name in viscy_utils.__all__:
        assert getattr(viscy_utils, name) is not None


def test_import_is_light():
    code = "import sys, viscy_utils, viscy_utils.cli; assert 'lightning' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
