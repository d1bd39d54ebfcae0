// The deploy drills' load: an open loop of RATE requests per second for DURATION seconds
// through HAProxy, WRITES percent of them record writes and the rest record reads.
import http from "k6/http";

const rate = Number(__ENV.RATE);
export const options = {
  discardResponseBodies: true,
  insecureSkipTLSVerify: true,
  summaryTrendStats: ["avg", "min", "med", "max", "p(50)", "p(95)", "p(99)"],
  scenarios: {
    load: {
      executor: "constant-arrival-rate",
      rate: rate,
      timeUnit: "1s",
      duration: `${__ENV.DURATION}s`,
      preAllocatedVUs: Math.max(20, Math.ceil(rate / 3)),
      maxVUs: Math.max(100, rate * 2),
      gracefulStop: "10s",
    },
  },
};

const base = __ENV.BASE;
const params = {
  headers: { Authorization: `Bearer ${__ENV.TOKEN}`, "Content-Type": "application/json" },
};
const writes = Number(__ENV.WRITES) / 100;

export default function () {
  if (Math.random() < writes) {
    http.post(`${base}/api/v1/collections/drill/records`, JSON.stringify({ title: "k6" }), params);
  } else {
    http.get(`${base}/api/v1/collections/drill/records?limit=5`, params);
  }
}

export function handleSummary(data) {
  return { [__ENV.SUMMARY_OUT]: JSON.stringify(data) };
}
