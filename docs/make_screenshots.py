"""The TensorBoard screenshots of the documentation, made from real runs.

    python docs/make_screenshots.py            # about two minutes on 2 cores; needs chromium

A sweep of the five algorithms x 3 seeds on CartPole-v1 (20,000 steps each) into a temporary
folder; then, for the whole sweep and for each algorithm's runs alone, TensorBoard on 127.0.0.1
and a headless-Chromium screenshot of its CUSTOM SCALARS tab, written to docs/images/.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ALGOS = ("trpo", "ppo_penalty", "ppo_clip", "acktr", "a2c")
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def screenshot(logdir: Path, out: Path, height: int) -> None:
    port = free_port()
    board = subprocess.Popen([str(BIN / "tensorboard"), "--logdir", str(logdir), "--host", "127.0.0.1",
                              "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(8)  # TensorBoard reads the event files before it serves them
        chromium = shutil.which("chromium") or shutil.which("chromium-browser") or "google-chrome"
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={out}",
                        f"--window-size=1600,{height}", "--virtual-time-budget=20000", "--hide-scrollbars",
                        f"http://127.0.0.1:{port}/#custom_scalars"], check=True, capture_output=True, timeout=120)
        print(f"wrote {out.relative_to(DOCS.parent)}")
    finally:
        board.terminate()
        board.wait()


def main() -> int:
    images = DOCS / "images"
    images.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        sweep = Path(tmp) / "sweep"
        subprocess.run([str(BIN / "rlrun"), "-m", f"algo={','.join(ALGOS)}", "seed=0,1,2", "env=CartPole-v1",
                        "total_steps=20000", "progress=off", f"hydra.sweep.dir={sweep}"], check=True,
                       capture_output=True)
        screenshot(sweep, images / "custom_scalars_sweep.png", 2500)
        for algo in ALGOS:
            screenshot(sweep / algo, images / f"custom_scalars_{algo}.png", 1000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
