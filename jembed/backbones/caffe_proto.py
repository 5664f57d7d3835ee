"""Caffe's `.caffemodel` without Caffe: the few messages of caffe.proto that hold the weights, built with protobuf.

A .caffemodel is a serialized `NetParameter`. Its layers are in `layer` (field 100, `LayerParameter`, Caffe since
2015) or, in older files such as bvlc_reference_caffenet and R-CNN's ilsvrc13 model, in `layers` (field 2,
`V1LayerParameter`, whose type is an enum). Each layer's `blobs` are `BlobProto`s: float data in row-major order and
the shape either in `shape.dim` or in the legacy num/channels/height/width. Only the fields below are declared;
protobuf skips every other field of the file (layer settings, data sources), so this reads any Caffe version's file.
Field numbers are caffe.proto's.
"""

import collections

from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
import numpy as np

_F = descriptor_pb2.FieldDescriptorProto
# V1LayerParameter.LayerType values of CaffeNet's layer types (others are named by number, e.g. 'V1:35').
V1_TYPES = {
    4: "Convolution",
    14: "InnerProduct",
    39: "Deconvolution",
    5: "Data",
    6: "Dropout",
    15: "LRN",
    17: "Pooling",
    18: "ReLU",
    20: "Softmax",
    21: "SoftmaxWithLoss",
    24: "WindowData",
}


def _message(name: str, fields: list[tuple[str, int, int, int, str]]) -> descriptor_pb2.DescriptorProto:
  msg = descriptor_pb2.DescriptorProto(name=name)
  for field_name, number, label, kind, type_name in fields:
    f = msg.field.add(name=field_name, number=number, label=label, type=kind)
    if type_name:
      f.type_name = f".caffe.{type_name}"
    if label == _F.LABEL_REPEATED and kind in (_F.TYPE_FLOAT, _F.TYPE_DOUBLE, _F.TYPE_INT64):
      f.options.packed = True
  return msg


def _build_classes() -> dict[str, type]:
  opt, rep = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
  file = descriptor_pb2.FileDescriptorProto(name="jembed_caffe_weights.proto", package="caffe", syntax="proto2")
  file.message_type.extend(
      [
          _message("BlobShape", [("dim", 1, rep, _F.TYPE_INT64, "")]),
          _message(
              "BlobProto",
              [
                  ("shape", 7, opt, _F.TYPE_MESSAGE, "BlobShape"),
                  ("data", 5, rep, _F.TYPE_FLOAT, ""),
                  ("double_data", 8, rep, _F.TYPE_DOUBLE, ""),
                  ("num", 1, opt, _F.TYPE_INT32, ""),
                  ("channels", 2, opt, _F.TYPE_INT32, ""),
                  ("height", 3, opt, _F.TYPE_INT32, ""),
                  ("width", 4, opt, _F.TYPE_INT32, ""),
              ],
          ),
          _message(
              "LayerParameter",
              [
                  ("name", 1, opt, _F.TYPE_STRING, ""),
                  ("type", 2, opt, _F.TYPE_STRING, ""),
                  ("bottom", 3, rep, _F.TYPE_STRING, ""),
                  ("top", 4, rep, _F.TYPE_STRING, ""),
                  ("blobs", 7, rep, _F.TYPE_MESSAGE, "BlobProto"),
              ],
          ),
          _message(
              "V1LayerParameter",
              [
                  ("bottom", 2, rep, _F.TYPE_STRING, ""),
                  ("top", 3, rep, _F.TYPE_STRING, ""),
                  ("name", 4, opt, _F.TYPE_STRING, ""),
                  ("type", 5, opt, _F.TYPE_INT32, ""),  # an enum on the wire
                  ("blobs", 6, rep, _F.TYPE_MESSAGE, "BlobProto"),
              ],
          ),
          _message(
              "NetParameter",
              [
                  ("name", 1, opt, _F.TYPE_STRING, ""),
                  ("layers", 2, rep, _F.TYPE_MESSAGE, "V1LayerParameter"),
                  ("layer", 100, rep, _F.TYPE_MESSAGE, "LayerParameter"),
              ],
          ),
      ]
  )
  pool = descriptor_pool.DescriptorPool()
  pool.Add(file)
  return {
      m.name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"caffe.{m.name}")) for m in file.message_type
  }


MESSAGES = _build_classes()
NetParameter = MESSAGES["NetParameter"]


def blob_to_array(blob) -> np.ndarray:
  """A BlobProto -> float32 array of its shape (`shape.dim`, else the legacy num/channels/height/width)."""
  data = np.asarray(blob.double_data if len(blob.double_data) else blob.data, np.float32)
  if blob.HasField("shape"):
    shape = tuple(int(d) for d in blob.shape.dim)
  else:
    shape = (blob.num, blob.channels, blob.height, blob.width)
  if int(np.prod(shape)) != data.size:
    raise ValueError(f"a blob of shape {shape} holds {data.size} values")
  return data.reshape(shape)


def read_layers(path: str) -> collections.OrderedDict:
  """{layer name: (type, [blob arrays])} of a .caffemodel, in the file's (= Caffe's forward) order."""
  net = NetParameter()
  with open(path, "rb") as f:
    net.ParseFromString(f.read())
  layers = collections.OrderedDict()
  for layer in net.layer:
    layers[layer.name] = (layer.type, [blob_to_array(b) for b in layer.blobs])
  for layer in net.layers:
    layers[layer.name] = (V1_TYPES.get(layer.type, f"V1:{layer.type}"), [blob_to_array(b) for b in layer.blobs])
  if not layers:
    raise ValueError(f"{path}: no layers (an empty file, a V0 net from before 2014, or not a .caffemodel)")
  return layers


def read_caffemodel(path: str) -> dict[str, np.ndarray]:
  """The weights of a .caffemodel as `<layer>.weight` (blob 0) and `<layer>.bias` (blob 1), in layer order.

  Fully connected weights keep Caffe's [out, in] (legacy 4-D blobs [1, 1, out, in] are squeezed to it); convolution
  weights Caffe's [out, in / group, kh, kw]. Further blobs (none in conv/fc layers) are `<layer>.blob<i>`.
  """
  tensors = {}
  for name, (kind, blobs) in read_layers(path).items():
    for i, blob in enumerate(blobs):
      if kind == "InnerProduct" and blob.ndim == 4 and blob.shape[:2] == (1, 1):
        blob = blob[0, 0]
      elif kind == "InnerProduct" and i == 1 and blob.ndim == 4:
        blob = blob.reshape(-1)
      elif kind in ("Convolution", "Deconvolution") and i == 1 and blob.ndim == 4:
        blob = blob.reshape(-1)  # legacy bias blobs are [1, 1, 1, C]
      suffix = ("weight", "bias")[i] if i < 2 else f"blob{i}"
      tensors[f"{name}.{suffix}"] = blob
  return tensors


def write_caffemodel(
    path: str, layers: list[tuple[str, str, list[np.ndarray]]], *, v1: bool = False, legacy_dims: bool = False
) -> None:
  """Writes (name, type, blobs) layers as a .caffemodel (for tests, and to make small files to share).

  Args:
    v1: write `layers` (V1LayerParameter, enum types) instead of `layer`, as the 2014 model-zoo files do.
    legacy_dims: store 4-D num/channels/height/width (blobs padded with leading 1s) instead of `shape`.
  """
  net = NetParameter(name="jembed")
  v1_codes = {v: k for k, v in V1_TYPES.items()}
  for name, kind, blobs in layers:
    layer = net.layers.add(name=name, type=v1_codes[kind]) if v1 else net.layer.add(name=name, type=kind)
    for blob in blobs:
      b = layer.blobs.add()
      blob = np.asarray(blob, np.float32)
      if legacy_dims:
        b.num, b.channels, b.height, b.width = (1,) * (4 - blob.ndim) + blob.shape
      else:
        b.shape.dim.extend(blob.shape)
      b.data.extend(blob.reshape(-1).tolist())
  with open(path, "wb") as f:
    f.write(net.SerializeToString())
