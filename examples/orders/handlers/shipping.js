// Prints a shipping label: the end of the pipeline.
export default function label(item) {
  return `LABEL-${item.id}-${item.bin}`;
}
