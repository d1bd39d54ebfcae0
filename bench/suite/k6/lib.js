// Shared by the suite's k6 scripts: the target (written by the runner as JSON), one
// function per request kind, counters for server errors and failed connections, and a
// summary written as JSON where the runner reads it.
import http from "k6/http";
import { SharedArray } from "k6/data";
import { Counter } from "k6/metrics";

export const target = JSON.parse(open(__ENV.TARGET));
// One copy for every VU (a per-VU copy of 10,000 ids times 1,000 VUs would not fit).
export const ids = new SharedArray("ids", () => target.ids);
export const auths = new SharedArray("auths", () => target.auths);

export const status5xx = new Counter("status_5xx");
export const socketErrors = new Counter("socket_errors");

let serial = 0;

function headers() {
  const auth = auths[__VU % auths.length];
  return { Authorization: auth, "Content-Type": "application/json" };
}

function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}

function tally(res) {
  if (res.status === 0) socketErrors.add(1);
  else if (res.status >= 500) status5xx.add(1);
  return res;
}

export const requests = {
  health: () => tally(http.get(target.base + target.health, { tags: { name: "health" } })),
  get: () =>
    tally(
      http.get(target.base + target.get_prefix + pick(ids), {
        headers: headers(),
        tags: { name: "get" },
      }),
    ),
  list: () => {
    const score = Math.floor(Math.random() * target.scores);
    return tally(
      http.get(target.base + target.list_pre + score + target.list_post, {
        headers: headers(),
        tags: { name: "list" },
      }),
    );
  },
  create: () => {
    serial += 1;
    const body = JSON.stringify({
      title: `k6 ${__VU} ${serial}`,
      score: serial % target.scores,
      done: false,
    });
    return tally(
      http.post(target.base + target.create_path, body, {
        headers: headers(),
        tags: { name: "create" },
      }),
    );
  },
};

// "get:60,list:30,create:10" -> a function that runs one request drawn with those weights.
export function mix(spec) {
  const parts = spec.split(",").map((part) => {
    const [kind, weight] = part.split(":");
    return { run: requests[kind], weight: Number(weight) };
  });
  const total = parts.reduce((sum, part) => sum + part.weight, 0);
  return () => {
    let draw = Math.random() * total;
    for (const part of parts) {
      draw -= part.weight;
      if (draw < 0) return part.run();
    }
    return parts[parts.length - 1].run();
  };
}

export const trendStats = ["avg", "min", "med", "max", "p(50)", "p(95)", "p(99)", "count"];

export function summary(data) {
  return { [__ENV.SUMMARY_OUT]: JSON.stringify(data) };
}
