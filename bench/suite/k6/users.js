// Simulated users: USERS virtual users, each sending one request drawn from MIX and then
// thinking for THINK seconds on average (uniform over half to one and a half times it).
// They arrive over RAMP seconds and then stay for DURATION seconds.
import { sleep } from "k6";
import { mix, summary, trendStats } from "./lib.js";

const think = Number(__ENV.THINK);
export const options = {
  discardResponseBodies: true,
  summaryTrendStats: trendStats,
  scenarios: {
    users: {
      executor: "ramping-vus",
      startVUs: 0,
      stages: [
        { duration: `${__ENV.RAMP}s`, target: Number(__ENV.USERS) },
        { duration: `${__ENV.DURATION}s`, target: Number(__ENV.USERS) },
      ],
      gracefulRampDown: "5s",
      gracefulStop: "5s",
    },
  },
};

const run = mix(__ENV.MIX);

export default function () {
  run();
  sleep(think * (0.5 + Math.random()));
}

export const handleSummary = summary;
