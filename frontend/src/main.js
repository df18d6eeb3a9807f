import './style.css';
import { ApiError, apiBase, createOrder, getOrder } from './api.js';

const $ = (id) => document.getElementById(id);
const form = $('order-form');
const message = $('message');
const errorBox = $('error');
const list = $('orders');

$('api-base').textContent = apiBase() || '(not set)';
$('build-id').textContent = import.meta.env.VITE_BUILD_ID || 'dev';

function showError(text) {
  errorBox.textContent = text;
  errorBox.hidden = false;
  message.textContent = '';
}

function clearError() {
  errorBox.textContent = '';
  errorBox.hidden = true;
}

function money(cents, currency) {
  return `${(cents / 100).toFixed(2)} ${currency}`;
}

// One order as the API returned it, with the host that answered (X-Served-By) when the API says.
function render(reply, how) {
  const order = reply.data;
  const item = document.createElement('li');
  item.className = 'order';
  item.dataset.orderId = String(order.id);
  const fields = [
    ['id', order.id],
    ['status', order.status],
    ['customer', order.customer],
    ['amount', money(order.amount_cents, order.currency)],
    ['items', order.items.map((i) => `${i.qty} x ${i.sku} @ ${money(i.unit_price_cents, order.currency)}`).join(', ')],
    ['created', order.created_at],
    ['served by', reply.servedBy || '(not given)'],
    [how, reply.cache ? `cache ${reply.cache}` : 'ok'],
  ];
  const dl = document.createElement('dl');
  for (const [name, value] of fields) {
    const dt = document.createElement('dt');
    dt.textContent = name;
    const dd = document.createElement('dd');
    dd.textContent = String(value);
    dd.dataset.field = name.replace(' ', '-');
    dl.append(dt, dd);
  }
  item.append(dl);
  list.querySelector(`[data-order-id="${order.id}"]`)?.remove();
  list.prepend(item);
  $('empty').hidden = true;
}

function readForm() {
  const price = form.price.value.trim().replace(',', '.');
  if (!/^\d+(\.\d{1,2})?$/.test(price)) {
    throw new ApiError('Unit price must be an amount like 12.50.');
  }
  return {
    customer: form.customer.value.trim(),
    items: [{
      sku: form.sku.value.trim(),
      qty: Number.parseInt(form.qty.value, 10),
      unit_price_cents: Math.round(Number.parseFloat(price) * 100),
    }],
  };
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearError();
  $('create').disabled = true;
  message.textContent = 'Creating…';
  try {
    const created = await createOrder(readForm());
    // Show the order as the API stores it: read it back.
    const read = await getOrder(created.data.id);
    render(read, 'read');
    message.textContent = `Order ${created.data.id} created (served by ${created.servedBy || 'an unnamed host'}).`;
  } catch (err) {
    showError(err instanceof ApiError ? err.message : `Unexpected error: ${err}`);
    if (!(err instanceof ApiError)) console.error(err);
  } finally {
    $('create').disabled = false;
  }
});

$('lookup-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  clearError();
  const id = $('lookup-id').value.trim();
  if (!/^\d+$/.test(id)) {
    showError('Order id must be a number.');
    return;
  }
  try {
    render(await getOrder(id), 'read');
    message.textContent = `Order ${id} loaded.`;
  } catch (err) {
    showError(err instanceof ApiError ? err.message : `Unexpected error: ${err}`);
  }
});
