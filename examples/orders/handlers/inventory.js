// Reserves stock (a little CPU), then asks shipping for a label.
export default function reserve(item, ctx) {
  let h = 0;
  for (let i = 0; i < 2000; i++) h = (h * 31 + item.sku.charCodeAt(i % item.sku.length)) | 0;
  ctx.send('shipping', { id: item.id, bin: h & 1023, sentAt: item.sentAt });
}
