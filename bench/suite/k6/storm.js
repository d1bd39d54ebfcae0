// Login storm: get-by-id probes at PROBE_RATE per second (open loop), alone when STORM_VUS
// is 0, else while STORM_VUS virtual users log in back to back. The probe's latency is a
// submetric of its own (http_req_duration{scenario:probe}).
import http from "k6/http";
import { requests, socketErrors, status5xx, summary, target, trendStats } from "./lib.js";

const storm = Number(__ENV.STORM_VUS);
const duration = `${__ENV.DURATION}s`;
const scenarios = {
  probe: {
    executor: "constant-arrival-rate",
    rate: Number(__ENV.PROBE_RATE),
    timeUnit: "1s",
    duration: duration,
    preAllocatedVUs: 20,
    maxVUs: 500,
    exec: "probe",
    gracefulStop: "5s",
  },
};
if (storm > 0) {
  scenarios.storm = {
    executor: "constant-vus",
    vus: storm,
    duration: duration,
    exec: "login",
    gracefulStop: "5s",
  };
}
export const options = {
  discardResponseBodies: true,
  summaryTrendStats: trendStats,
  scenarios: scenarios,
  thresholds: {
    "http_req_duration{scenario:probe}": ["max>=0"],
    "http_req_duration{scenario:storm}": ["max>=0"],
    "http_reqs{scenario:probe}": ["count>=0"],
    "http_reqs{scenario:storm}": ["count>=0"],
    "http_req_failed{scenario:probe}": ["rate>=0"],
  },
};

export function probe() {
  requests.get();
}

export function login() {
  const body = JSON.stringify(target.logins[__VU % target.logins.length]);
  const res = http.post(target.base + target.login_path, body, {
    headers: { "Content-Type": "application/json" },
    tags: { name: "login" },
  });
  if (res.status === 0) socketErrors.add(1);
  else if (res.status >= 500) status5xx.add(1);
}

export const handleSummary = summary;
