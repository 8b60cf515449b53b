"""SB3's PPO CnnPolicy on ALE/Breakout-v5 with the PPO paper's Atari setting: the learning-curve
reference that rlrun's PPO-Clip on Atari is compared with (docs/spaces.md, Atari).

    python benchmarks/sb3_atari_ppo.py --device cuda [--steps 1000000]    # an env with stable-baselines3 and ale-py

8 envs in subprocesses (``make_atari_env``: no-op reset, frame skip 4, 84x84 grey, episodic life,
fire reset, sign-clipped rewards) + ``VecFrameStack(4)``; 128 steps, 3 epochs of minibatch 256,
Adam 2.5e-4 and clip 0.1 annealed linearly, vf_coef 1, ent_coef 0.01, GAE 0.95. SB3 prints
``ep_rew_mean`` (whole games, unclipped) and its PPO diagnostics every update.
"""

import argparse

import ale_py
import gymnasium as gym
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_atari_env
from stable_baselines3.common.vec_env import SubprocVecEnv, VecFrameStack


def linear(start: float):
    return lambda remaining: remaining * start


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    gym.register_envs(ale_py)
    env = VecFrameStack(make_atari_env("ALE/Breakout-v5", n_envs=8, seed=args.seed, env_kwargs={"frameskip": 1},
                                       vec_env_cls=SubprocVecEnv), n_stack=4)
    model = PPO("CnnPolicy", env, n_steps=128, n_epochs=3, batch_size=256, learning_rate=linear(2.5e-4),
                clip_range=linear(0.1), vf_coef=1.0, ent_coef=0.01, gamma=0.99, gae_lambda=0.95, seed=args.seed,
                device=args.device, verbose=1)
    model.learn(args.steps)
