// Dashboard: renders what the core pushes; no polling.
const T = {
  zh: { pos: "POS 状态", port: "串口", device: "设备号", heard: "最后通讯", lang: "English" },
  en: { pos: "POS status", port: "Port", device: "Device ID", heard: "Last heard", lang: "中文" },
};
let lang = localStorage.getItem("lang") || "zh";
let last = null;

function render() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach((el) => (el.textContent = T[lang][el.dataset.i18n]));
  document.getElementById("lang").textContent = T[lang].lang;
  if (!last) return;
  const s = document.getElementById("state");
  s.textContent = lang === "zh" ? last.tooltip_zh : last.tooltip_en;
  s.className = "state " + last.state;
  document.getElementById("port").textContent = last.port || "-";
  document.getElementById("device").textContent = last.device_id || "-";
  document.getElementById("heard").textContent = last.last_heard || "-";
}

document.getElementById("lang").addEventListener("click", () => {
  lang = lang === "zh" ? "en" : "zh";
  localStorage.setItem("lang", lang);
  render();
});

if (window.__TAURI__) {
  const { invoke } = window.__TAURI__.core;
  const { listen } = window.__TAURI__.event;
  invoke("status").then((v) => { last = v; render(); });
  listen("pos-status", (e) => { last = e.payload; render(); });
}
render();
