import { request } from "node:http";

/**
 * True when a Docker daemon answers `GET /_ping` within `timeoutMs`. The docker CLI alone is
 * not enough: testcontainers needs the daemon, and machines without one fall back to local
 * services.
 */
export async function dockerDaemonAnswers(timeoutMs = 1500): Promise<boolean> {
  if (process.env.PSF_NO_DOCKER === "1") return false;
  const host = process.env.DOCKER_HOST;
  const target: { socketPath?: string; host?: string; port?: number } = host?.startsWith("tcp://")
    ? {
        host: new URL(host.replace("tcp://", "http://")).hostname,
        port: Number(new URL(host.replace("tcp://", "http://")).port || 2375),
      }
    : { socketPath: host?.startsWith("unix://") ? host.slice("unix://".length) : "/var/run/docker.sock" };
  return new Promise((resolve) => {
    const req = request({ ...target, path: "/_ping", method: "GET", timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("timeout", () => {
      req.destroy();
      resolve(false);
    });
    req.on("error", () => resolve(false));
    req.end();
  });
}
