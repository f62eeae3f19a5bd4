"""``python -m bench.client_pacing``: one browser tab makes a burst of changes (60 creates, then 50
moves, as fast as the page can call them) against the real handlers behind the local gateway, with
@collab/client's send pacing off and on, and prints what the server refused and how long the burst
took to be saved.

The server allows 100 frames a minute per user (contract 3.2; the sync and the heartbeats count
too, heartbeats on a budget of their own). Without pacing the client sends all 110 at once: the
server answers ``rate_limited`` to what is over the budget and the client retries those after
``retry_after_ms``. With pacing (the default budget: a burst of 20, then 70 a minute) nothing is
refused: the edits wait in the client instead. Each run uses a user of its own (their own budget).
Chromium is Debian's ``/usr/bin/chromium``; JSON goes to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from bench.common import services
from bench.e2e import JWT_SECRET, GatewayProcess
from tests.support.workspaces import make_workspaces

CREATES, MOVES = 60, 50
NO_PACING = {"burst": 1_000_000, "perMinute": 1_000_000_000}

# Counts every `rate_limited` answer and every socket the page opens (a refused burst can get the
# connection closed: v1.2 disconnects a client that keeps sending over budget).
COUNT_SOCKETS = """
window.__rateLimited = 0; window.__sockets = 0;
const RealSocket = window.WebSocket;
window.WebSocket = class extends RealSocket {
  constructor(...args) {
    super(...args);
    window.__sockets += 1;
    this.addEventListener('message', (e) => {
      if (String(e.data).includes('"rate_limited"')) window.__rateLimited += 1;
    });
  }
};
"""

BURST = """async ({ token, wid, budget, creates, moves, tag }) => {
  const { CollabClient } = await import('/collab-client.js');
  const options = { token, workspaceId: wid, mutationTimeoutMs: 900000 };
  if (budget) options.budget = budget;
  const c = new CollabClient(options);
  const rejected = [];
  c.on('rejected', ({ error }) => rejected.push(error.code));
  const live = new Promise((resolve) => {
    const off = c.on('state', ({ state }) => { if (state === 'live') { off(); resolve(); } });
  });
  c.start();
  await live;
  const t0 = performance.now();
  const ids = [];
  for (let i = 0; i < creates; i++) {
    const id = crypto.randomUUID();
    ids.push(id);
    c.createTask({ id, title: `${tag} ${i}` });
  }
  for (let i = 0; i < moves; i++) c.updateTask(ids[i], { status: 'in_progress' });
  let flushed = true;
  try { await c.flush(900000); } catch { flushed = false; }
  const ms = performance.now() - t0;
  const onBoard = c.tasks().filter((t) => t.title.startsWith(`${tag} `) && !t.pending);
  c.stop();
  return {
    ms, flushed, rejected, rateLimited: window.__rateLimited, sockets: window.__sockets,
    saved: onBoard.length, moved: onBoard.filter((t) => t.status === 'in_progress').length,
  };
}"""


def run(gw_url: str, token: str, workspace_id: str, budget: dict[str, int] | None) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_context().new_page()
            page.add_init_script(COUNT_SOCKETS)
            page.goto(f"{gw_url}/")  # the board's origin (no token: it only shows a notice)
            args = {
                "token": token,
                "wid": workspace_id,
                "budget": budget,
                "creates": CREATES,
                "moves": MOVES,
                "tag": uuid.uuid4().hex[:8],  # this run's tasks, told apart from the other run's
            }
            return dict(page.evaluate(BURST, args))
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.client_pacing", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    from collab.config import load_settings

    results: dict[str, Any] = {"command": "python -m bench.client_pacing", "loadavg_before": os.getloadavg()}
    with services() as (db_url, redis_url):
        import redis

        redis.Redis.from_url(redis_url).flushdb()
        env = {
            "DATABASE_URL": db_url,
            "REDIS_URL": redis_url,
            "JWT_SECRET": JWT_SECRET,
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
        settings = load_settings({**env, "WEBSOCKET_URL": "ws://unused/ws"})
        [team] = make_workspaces(db_url, settings, workspaces=1, members=2, tasks=0, tag=uuid.uuid4().hex[:6])
        with GatewayProcess(env) as gw:
            for name, budget, member in (("pacing off", NO_PACING, 0), ("pacing on (default)", None, 1)):
                print(f"{name}: {CREATES} creates + {MOVES} moves at once ...", file=sys.stderr)
                results[name] = run(gw.http_url, team.members[member].token, team.workspace_id, budget)
    results["loadavg_after"] = os.getloadavg()
    (args.out / "client_pacing.json").write_text(json.dumps(results, indent=1))
    head = ("run", "rate_limited", "rolled back", "sockets", "saved", "moved", "seconds")
    print(f"{head[0]:<22}{head[1]:>14}{head[2]:>13}{head[3]:>9}{head[4]:>7}{head[5]:>7}{head[6]:>9}")
    for name in ("pacing off", "pacing on (default)"):
        r = results[name]
        print(
            f"{name:<22}{r['rateLimited']:>14}{len(r['rejected']):>13}{r['sockets']:>9}"
            f"{r['saved']:>7}{r['moved']:>7}{r['ms'] / 1000:>9.1f}"
        )
    print(f"load average before {results['loadavg_before']}, after {results['loadavg_after']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
