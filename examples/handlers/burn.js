// CPU-bound job: spins payload.us microseconds.
export default function burn(job) {
  const end = performance.now() + job.us / 1000;
  let x = 0;
  while (performance.now() < end) x += Math.sqrt(x + 1);
  return x;
}
