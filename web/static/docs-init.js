// Interactive API docs, served from local assets (the service may run offline).
window.ui = SwaggerUIBundle({ url: "/api/openapi.json", dom_id: "#swagger-ui" });
