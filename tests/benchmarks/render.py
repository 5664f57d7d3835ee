r"""Rendering throughput: images/s of both backends, and of Blender (the original pipeline's renderer) when present.

  python tests/benchmarks/render.py                       # icosphere with 20,480 faces, 100 views per call
  python tests/benchmarks/render.py --mesh path/to/model.obj --sizes 128 224 --repeats 5

Each measurement renders `--views` views of one mesh in ONE call (the way the pipeline calls a renderer), takes the
best of `--repeats` calls and reports wall-clock images/s and images per CPU-second (process user + system time,
llvmpipe's threads included: the per-core figure, less sensitive to other load on the machine).

Blender (`blender` on PATH, e.g. Debian's package) renders the same mesh, cameras, lamps and gray material headless,
like-for-like with antialias=1 (one sample per pixel, no filter), with each of `--blender-engines`: Cycles on the CPU
(no denoising, no bounces) and Workbench (rasterized, studio lighting instead of the lamps). Blender Internal, which
the paper used, is gone since 2.80. Only the renders are timed, not Blender's start-up or scene set-up, and the
fastest engine is the peer: both choices favour Blender.
The last stdout line is one JSON object; "ours" is EGL at 128², "peer" Blender at 128² (the embree backend at 128²
when Blender is not measured), "ratio" = ours / peer; "egl_128_per_cpu_s" is the per-core figure. A closed mesh
(the icosphere) is drawn with its back faces culled (`jembed.render.culling`); "egl_128_open_per_cpu_s" is the same
mesh less one face, which EGL draws without culling, as it draws most ShapeNet models.
"""

import argparse
import json
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import trimesh

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from jembed.render import backend  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.render import camera  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.render import culling  # pylint: disable=g-import-not-at-top,wrong-import-position
from jembed.render import lights as lights_lib  # pylint: disable=g-import-not-at-top,wrong-import-position

# Runs inside Blender's Python (which may lack numpy): builds the scene from a JSON file and times
# bpy.ops.render.render per view.
_BLENDER_SCRIPT = r"""
import json, sys, time
import bpy
from mathutils import Matrix
args = json.loads(sys.argv[sys.argv.index('--') + 1])
with open(args['scene']) as f:
  data = json.load(f)
bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
mesh = bpy.data.meshes.new('shape')
mesh.from_pydata(data['vertices'], [], data['faces'])
obj = bpy.data.objects.new('shape', mesh)
scene.collection.objects.link(obj)
material = bpy.data.materials.new('gray')
material.diffuse_color = (0.48, 0.48, 0.48, 1.0)
material.use_nodes = True
material.node_tree.nodes['Principled BSDF'].inputs['Base Color'].default_value = (0.48, 0.48, 0.48, 1.0)
obj.data.materials.append(material)
for i, (position, energy) in enumerate(zip(data['lamp_positions'], data['lamp_energies'])):
  lamp = bpy.data.lights.new(f'lamp{i}', 'POINT')
  lamp.energy = float(energy) * 100.0  # Cycles watts; the value only matters for the picture, not the timing
  lamp_obj = bpy.data.objects.new(f'lamp{i}', lamp)
  lamp_obj.location = [float(x) for x in position]
  scene.collection.objects.link(lamp_obj)
world = bpy.data.worlds.new('ambient')
world.color = (0.35, 0.35, 0.35)
scene.world = world
cam = bpy.data.cameras.new('camera')
cam.lens, cam.sensor_width, cam.clip_start, cam.clip_end = 35.0, 32.0, 0.1, 100.0
cam_obj = bpy.data.objects.new('camera', cam)
scene.collection.objects.link(cam_obj)
scene.camera = cam_obj
scene.render.engine = args['engine']
scene.render.resolution_x = scene.render.resolution_y = args['size']
scene.render.resolution_percentage = 100
scene.render.film_transparent = True
# Like-for-like with our antialias=1: one sample at each pixel centre, no reconstruction filter.
scene.render.filter_size = 0.0
scene.display.render_aa = 'OFF'
if args['engine'] == 'CYCLES':
  scene.cycles.device = 'CPU'
  scene.cycles.samples = args['samples']
  scene.cycles.use_denoising = False
  scene.cycles.max_bounces = 0
times = []
for i, matrix in enumerate(data['cameras']):
  cam_obj.matrix_world = Matrix(matrix)
  start = time.perf_counter()
  bpy.ops.render.render(write_still=False)
  times.append(time.perf_counter() - start)
  if i == 0 and args.get('png'):
    bpy.data.images['Render Result'].save_render(args['png'])
print('BLENDER_RESULT ' + json.dumps({'times': times, 'version': bpy.app.version_string}))
"""


def _cpu_seconds() -> float:
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def benchmark(renderer, vertices, faces, views, size, repeats) -> dict:
  renderer.render(vertices, faces, views[:2], size=size)  # warm-up: shader compilation, framebuffer
  best_wall, best_cpu = np.inf, np.inf
  for _ in range(repeats):
    cpu, wall = _cpu_seconds(), time.perf_counter()
    renderer.render(vertices, faces, views, size=size)
    best_wall = min(best_wall, time.perf_counter() - wall)
    best_cpu = min(best_cpu, _cpu_seconds() - cpu)
  return {"images_per_s": len(views) / best_wall, "images_per_cpu_s": len(views) / max(best_cpu, 1e-9)}


def blender_images_per_s(vertices, faces, views, size, engine, args) -> dict | None:
  """Renders the views in Blender headless with `engine`; None when blender is absent or fails."""
  binary = shutil.which("blender")
  if binary is None:
    print("blender not on PATH: no peer measurement")
    return None
  rotation, eye = camera.camera_frames(views)
  to_blender = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]])  # ours (x, y, z) -> Blender (x, -z, y)
  cameras = np.zeros((len(views), 4, 4))
  cameras[:, :3, :3] = to_blender @ rotation.transpose(0, 2, 1)  # columns: right, up, backward (Blender camera axes)
  cameras[:, :3, 3] = eye @ to_blender.T
  cameras[:, 3, 3] = 1
  lamps = lights_lib.paper_lfd_lights()
  with tempfile.TemporaryDirectory() as tmp:
    scene = os.path.join(tmp, "scene.json")
    pathlib.Path(scene).write_text(
        json.dumps(
            {
                "vertices": (vertices @ to_blender.T).tolist(),
                "faces": faces.tolist(),
                "cameras": cameras.tolist(),
                "lamp_positions": (lamps.positions @ to_blender.T).tolist(),
                "lamp_energies": lamps.energies.tolist(),
            }
        )
    )
    script = os.path.join(tmp, "bench.py")
    pathlib.Path(script).write_text(_BLENDER_SCRIPT)
    png = f"{args.blender_png}_{engine.lower()}.png" if args.blender_png else ""
    blender_args = {"scene": scene, "size": size, "engine": engine, "samples": args.blender_samples, "png": png}
    command = [binary, "-b", "--factory-startup", "-noaudio", "--python", script, "--", json.dumps(blender_args)]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=args.blender_timeout, check=False)
    total = time.perf_counter() - start
  lines = [l for l in proc.stdout.splitlines() if l.startswith("BLENDER_RESULT ")]
  if proc.returncode or not lines:
    print(f"blender failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return None
  result = json.loads(lines[-1][len("BLENDER_RESULT ") :])
  render_times = result["times"][1:] or result["times"]  # the first render also builds the BVH / compiles
  return {
      "images_per_s": len(render_times) / sum(render_times),
      "version": result["version"],
      "engine": engine,
      "samples": args.blender_samples if engine == "CYCLES" else 1,
      "process_seconds": total,
  }


def load_mesh(spec: str) -> tuple[np.ndarray, np.ndarray]:
  """'icosphere' (subdivision 5: 20,480 faces) or a mesh file, centred and scaled to unit bounding-sphere radius."""
  mesh = trimesh.creation.icosphere(subdivisions=5) if spec == "icosphere" else trimesh.load(spec, force="mesh")
  v = np.asarray(mesh.vertices, np.float64)
  v = v - (v.min(0) + v.max(0)) / 2
  return (v / np.linalg.norm(v, axis=1).max()).astype(np.float32), np.asarray(mesh.faces, np.int32)


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--mesh", default="icosphere", help="'icosphere' or a mesh file")
  parser.add_argument("--views", type=int, default=100, help="views per render call")
  parser.add_argument("--sizes", type=int, nargs="+", default=[128, 224])
  parser.add_argument("--backends", nargs="+", default=["egl", "embree"])
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--blender", action=argparse.BooleanOptionalAction, default=True)
  parser.add_argument("--blender-views", type=int, default=11, help="views Blender renders (the first is warm-up)")
  parser.add_argument(
      "--blender-engines",
      nargs="+",
      default=["CYCLES", "BLENDER_WORKBENCH"],
      help="the fastest is the peer; BLENDER_EEVEE also works but is far slower headless",
  )
  parser.add_argument("--blender-samples", type=int, default=1, help="Cycles samples per pixel")
  parser.add_argument("--blender-timeout", type=float, default=600)
  parser.add_argument("--blender-png", default="", help="save Blender's first view as <this>_<engine>.png")
  args = parser.parse_args()

  vertices, faces = load_mesh(args.mesh)
  rng = np.random.default_rng(0)
  views = camera.Views.make(rng.uniform(0, 360, args.views), rng.uniform(-20, 60, args.views), 0.0, 3.0)
  print(
      f"mesh {args.mesh}: {len(vertices)} vertices, {len(faces)} faces; {args.views} views per call; "
      f"{os.cpu_count()} CPUs"
  )
  results = {}
  for name in args.backends:
    renderer = backend.get_renderer(name)
    device = getattr(renderer, "device", "cpu")
    for size in args.sizes:
      stats = benchmark(renderer, vertices, faces, views, size, args.repeats)
      results[f"{name}_{size}"] = stats
      print(
          f"{name:7s} {size:4d}²: {stats['images_per_s']:8.1f} images/s, "
          f"{stats['images_per_cpu_s']:8.1f} images per CPU-second ({device})"
      )
    if name == "egl" and 128 in args.sizes and culling.closed_outward(vertices, faces):
      # The same mesh less one face is open, so EGL draws both sides of every face (`jembed.render.culling`): the
      # figure for meshes that do not qualify (most ShapeNet models).
      stats = benchmark(renderer, vertices, faces[1:], views, 128, args.repeats)
      results["egl_128_open"] = stats
      print(f"egl     128², one face removed (no culling): {stats['images_per_cpu_s']:8.1f} images per CPU-second")
  peers = {}
  for engine in args.blender_engines if args.blender and 128 in args.sizes else []:
    peer = blender_images_per_s(vertices, faces, views[: args.blender_views], 128, engine, args)
    if peer:
      peers[engine] = peer
      print(
          f"blender {peer['version']} {engine} ({peer['samples']} samples/pixel) 128²: "
          f"{peer['images_per_s']:.2f} images/s (renders only; whole process {peer['process_seconds']:.1f} s)"
      )
  peer = max(peers.values(), key=lambda p: p["images_per_s"], default=None)
  ours = results.get("egl_128", {}).get("images_per_s")
  peer_rate = peer["images_per_s"] if peer else None
  if peer is None and "embree_128" in results:  # no Blender here: the other backend, measured in this run, is the peer
    peer_rate = results["embree_128"]["images_per_s"]
    peer = {"version": "", "engine": "embree (jembed's ray caster; Blender not measured)"}
  summary = {
      "benchmark": "render",
      "ours": ours,
      "peer": peer_rate,
      "unit": "images/s",
      "ratio": ours / peer_rate if ours and peer_rate else None,
      "faces": int(len(faces)),
      "views_per_call": args.views,
  }
  for key, stats in results.items():
    summary[key] = round(stats["images_per_s"], 2)
    summary[key + "_per_cpu_s"] = round(stats["images_per_cpu_s"], 2)
  for engine, stats in peers.items():
    summary[f"blender_{engine.lower().replace('blender_', '')}_128"] = round(stats["images_per_s"], 2)
  if peer:
    summary["peer_engine"] = f"blender {peer['version']} {peer['engine']}" if peer["version"] else peer["engine"]
  print(json.dumps(summary))


if __name__ == "__main__":
  main()
