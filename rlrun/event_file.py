"""TensorBoard event files, written from TensorBoard's protocol buffers.

An event file is a sequence of records, each one serialised ``Event``: the data's length
(uint64, little-endian), the length's masked CRC-32C, the data, the data's masked CRC-32C (the
TFRecord format). Writing them here needs only the protos, not ``torch.utils.tensorboard``, whose
import (its image, audio, video and histogram helpers) is a noticeable part of a short run's start-up.
What a run writes: scalars, text, the custom-scalars layout and the HParams plugin's entry.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path
from typing import Iterable

from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboard.compat.proto.types_pb2 import DT_STRING
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

# The HParams plugin's names (tensorboard.plugins.hparams.metadata, whose import costs more than
# these protos' because of the modules it brings along).
HPARAMS_PLUGIN, HPARAMS_VERSION = "hparams", 0
EXPERIMENT_TAG, SESSION_START_TAG, SESSION_END_TAG = ("_hparams_/experiment", "_hparams_/session_start_info",
                                                      "_hparams_/session_end_info")


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # the reflected Castagnoli polynomial
        table.append(crc)
    return table


_TABLE = _crc32c_table()
FLUSH_EVERY_S = 10.0  # as torch's SummaryWriter(flush_secs=10)


def masked_crc32c(data: bytes) -> int:
    """CRC-32C of ``data``, rotated right by 15 bits plus 0xa282ead8 (TFRecord's mask)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _string_tensor(data: bytes) -> TensorProto:
    return TensorProto(dtype=DT_STRING, string_val=[data], tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)]))


def _plugin(name: str, content: bytes = b"") -> SummaryMetadata:
    return SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name=name, content=content))


class EventFile:
    """``events.out.tfevents.<time>.<host>.<pid>`` in ``directory``, appended to as a run goes.

    ``purge_step``: a resumed run's first step; TensorBoard then drops the events of an earlier
    session at or after it (written after that session's last checkpoint)."""

    def __init__(self, directory: Path, purge_step: int | None = None):
        directory.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.0"
        self.path = directory / name
        self.file = open(self.path, "ab")
        self.flushed = time.monotonic()
        self.write(Event(wall_time=time.time(), file_version="brain.Event:2"))
        if purge_step is not None:
            self.write(Event(wall_time=time.time(), step=purge_step, session_log=SessionLog(status=SessionLog.START)))

    def write(self, event: Event) -> None:
        data = event.SerializeToString()
        header = struct.pack("<Q", len(data))
        self.file.write(header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data)))
        if time.monotonic() - self.flushed >= FLUSH_EVERY_S:  # a TensorBoard watching the run sees it go
            self.flush()

    def summary(self, summary: Summary, step: int) -> None:
        self.write(Event(wall_time=time.time(), step=step, summary=summary))

    def scalars(self, values: Iterable[tuple[str, float]], step: int) -> None:
        """Each (tag, value) as a scalar at ``step``, in one event."""
        self.summary(Summary(value=[Summary.Value(tag=tag, simple_value=float(value)) for tag, value in values]), step)

    def text(self, tag: str, text: str, step: int = 0) -> None:
        """Markdown ``text`` in the TEXT tab under ``tag``."""
        self.summary(Summary(value=[Summary.Value(tag=f"{tag}/text_summary", metadata=_plugin("text"),
                                                  tensor=_string_tensor(text.encode()))]), step)

    def custom_scalars(self, layout: dict[str, dict[str, list]]) -> None:
        """The CUSTOM SCALARS tab: category -> chart title -> ``["Multiline", tag regexes]``."""
        categories = [layout_pb2.Category(title=category, chart=[
            layout_pb2.Chart(title=title, multiline=layout_pb2.MultilineChartContent(tag=regexes))
            for title, (_, regexes) in charts.items()]) for category, charts in layout.items()]
        config = layout_pb2.Layout(category=categories).SerializeToString()
        self.summary(Summary(value=[Summary.Value(tag="custom_scalars__config__", metadata=_plugin("custom_scalars"),
                                                  tensor=_string_tensor(config))]), 0)

    def hparams(self, hparams: dict[str, float | str], metrics: Iterable[str]) -> None:
        """The HParams plugin's entry for this run: its experiment (columns), session start (values) and end."""
        def entry(tag: str, **data) -> Summary:
            content = plugin_data_pb2.HParamsPluginData(version=HPARAMS_VERSION, **data)
            return Summary(value=[Summary.Value(tag=tag, metadata=_plugin(HPARAMS_PLUGIN, content.SerializeToString()))])

        start = plugin_data_pb2.SessionStartInfo()
        infos = []
        for key, value in hparams.items():
            if isinstance(value, str):
                start.hparams[key].string_value = value
            else:
                start.hparams[key].number_value = value
            kind = "DATA_TYPE_STRING" if isinstance(value, str) else "DATA_TYPE_FLOAT64"
            infos.append(api_pb2.HParamInfo(name=key, type=api_pb2.DataType.Value(kind)))
        experiment = api_pb2.Experiment(hparam_infos=infos,
                                        metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag)) for tag in metrics])
        for summary in (entry(EXPERIMENT_TAG, experiment=experiment),
                        entry(SESSION_START_TAG, session_start_info=start),
                        entry(SESSION_END_TAG, session_end_info=plugin_data_pb2.SessionEndInfo(
                            status=api_pb2.Status.Value("STATUS_SUCCESS")))):
            self.summary(summary, 0)

    def flush(self) -> None:
        self.file.flush()
        self.flushed = time.monotonic()

    def close(self) -> None:
        self.file.close()
