package apidocs

import "html"

// pageHTML is the page; prefix (a valid X-Forwarded-Prefix or "") comes
// before its asset paths, so the page also works behind a proxy that serves
// the API under a path.
func pageHTML(prefix string) string {
	p := html.EscapeString(prefix)
	return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="` + metaCSP + `">
<title>shop API reference</title>
<link rel="stylesheet" href="` + p + `/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="` + p + `/docs/swagger-ui-bundle.js"></script>
<script src="` + p + `/docs/init.js"></script>
</body>
</html>
`
}

// initJS starts Swagger UI on the document beside the page (resolved from
// the script's own address, so a path prefix carries over); validatorUrl
// null keeps it from sending the document to swagger.io's validator.
const initJS = `var specURL = new URL("../openapi.yaml", document.currentScript.src).href;
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: specURL,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    tryItOutEnabled: false,
    presets: [SwaggerUIBundle.presets.apis],
  });
});
`
