// Open loop: RATE requests per second for DURATION seconds, each drawn from MIX, whatever
// the server's latency (constant arrival rate, so a slow server cannot slow the load and
// hide its own queueing: no coordinated omission). Iterations k6 could not start in time
// (every VU busy) are counted as dropped_iterations.
import { mix, summary, trendStats } from "./lib.js";

const rate = Number(__ENV.RATE);
export const options = {
  discardResponseBodies: true,
  summaryTrendStats: trendStats,
  scenarios: {
    arrival: {
      executor: "constant-arrival-rate",
      rate: rate,
      timeUnit: "1s",
      duration: `${__ENV.DURATION}s`,
      preAllocatedVUs: Math.max(10, Math.ceil(rate / 5)),
      maxVUs: Math.max(50, rate * 2),
      gracefulStop: "5s",
    },
  },
};

const run = mix(__ENV.MIX);

export default function () {
  run();
}

export const handleSummary = summary;
