// Token refresh, closed loop: VUS virtual users, each with its own refresh-token family
// (setup logs in once per VU). Refresh tokens are single-use and rotate, so a VU always
// sends the token its previous refresh returned; a shared token would trip reuse detection.
import http from "k6/http";
import { Counter } from "k6/metrics";
import { socketErrors, status5xx, summary, target, trendStats } from "./lib.js";

const chains = Number(__ENV.VUS);
const broken = new Counter("broken_chains");
export const options = {
  summaryTrendStats: trendStats,
  setupTimeout: "120s",
  scenarios: {
    refresh: {
      executor: "constant-vus",
      vus: chains,
      duration: `${__ENV.DURATION}s`,
      gracefulStop: "5s",
    },
  },
  thresholds: { "http_req_duration{scenario:refresh}": ["max>=0"] },
};

export function setup() {
  const logins = [];
  for (let i = 0; i < chains; i += 1) {
    const body = JSON.stringify(target.logins[i % target.logins.length]);
    logins.push(["POST", target.base + target.login_path, body, {
      headers: { "Content-Type": "application/json" },
    }]);
  }
  const tokens = [];
  for (let start = 0; start < logins.length; start += 8) {
    for (const res of http.batch(logins.slice(start, start + 8))) {
      if (res.status !== 200) throw new Error(`login for the refresh chains: ${res.status}`);
      tokens.push(res.json("refresh_token"));
    }
  }
  return { tokens };
}

let token = null;

export default function (data) {
  if (token === null) token = data.tokens[__VU - 1];
  if (token === undefined) return;
  const res = http.post(
    target.base + target.refresh_path,
    { grant_type: "refresh_token", refresh_token: token },
    { tags: { name: "refresh" } },
  );
  if (res.status === 200) {
    token = res.json("refresh_token");
  } else {
    if (res.status === 0) socketErrors.add(1);
    else if (res.status >= 500) status5xx.add(1);
    broken.add(1);
    token = undefined; // the family is gone; this VU stops rather than log in again
  }
}

export const handleSummary = summary;
