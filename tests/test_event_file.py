"""rlrun's own event-file writer, read back with TensorBoard's reader."""

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as tensorboard_masked_crc32c
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.hparams import plugin_data_pb2

from rlrun.event_file import EventFile, masked_crc32c


@pytest.mark.parametrize("data", [b"", b"123456789", bytes(range(256)) * 3])
def test_the_record_checksum_is_tensorboards(data):
    assert masked_crc32c(data) == tensorboard_masked_crc32c(data)


def test_scalars_text_layout_and_hparams_read_back(tmp_path):
    events = EventFile(tmp_path)
    events.text("config", "a: 1")
    events.custom_scalars({"returns": {"train": ["Multiline", ["^Returns/train$"]]}})
    for step in (100, 200, 300):
        events.scalars([("Returns/train", step / 10), ("policy/kl", 0.01)], step)
    events.hparams({"algo": "trpo", "seed": 3.0}, ["Returns/train"])
    events.close()
    acc = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("Returns/train")] == [(100, 10.0), (200, 20.0), (300, 30.0)]
    assert acc.Tensors("config/text_summary")[0].tensor_proto.string_val == [b"a: 1"]
    layout = layout_pb2.Layout.FromString(acc.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0])
    assert layout.category[0].chart[0].multiline.tag == ["^Returns/train$"]
    start = plugin_data_pb2.HParamsPluginData.FromString(
        acc.SummaryMetadata("_hparams_/session_start_info").plugin_data.content).session_start_info
    assert start.hparams["algo"].string_value == "trpo" and start.hparams["seed"].number_value == 3.0


def test_a_purge_step_drops_the_earlier_sessions_later_events(tmp_path):
    first = EventFile(tmp_path)
    for step in (1, 2, 3):
        first.scalars([("x", float(step))], step)
    first.close()
    first.path.rename(tmp_path / "events.out.tfevents.0000000001.host.1.0")  # an earlier session's file
    resumed = EventFile(tmp_path, purge_step=2)
    resumed.scalars([("x", 20.0)], 2)
    resumed.close()
    acc = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("x")] == [(1, 1.0), (2, 20.0)]


def test_the_hparams_names_are_the_plugins():
    from tensorboard.plugins.hparams import metadata

    from rlrun import event_file

    assert (event_file.HPARAMS_PLUGIN, event_file.HPARAMS_VERSION) == (metadata.PLUGIN_NAME, metadata.PLUGIN_DATA_VERSION)
    assert (event_file.EXPERIMENT_TAG, event_file.SESSION_START_TAG, event_file.SESSION_END_TAG) == (
        metadata.EXPERIMENT_TAG, metadata.SESSION_START_INFO_TAG, metadata.SESSION_END_INFO_TAG)
