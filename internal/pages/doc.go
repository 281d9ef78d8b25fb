// Package pages is the plumbing the HTML pages share: the admin server's
// (package admin) and /+feature-info (features.InfoHandler, which
// applications mount too). It holds the one style sheet and the small
// scripts, served as files under /+static/ (ServeStatic); the one layout
// ("top" and "bottom" templates, with the navigation bar); and the
// protective headers every page sends (SetHeaders).
//
// The pages link the style sheet (StaticHref) and their
// Content-Security-Policy allows styles and scripts from this site only
// (Policy): no inline style or script. /+feature-info mounted by an
// application on its own has no /+static/ to link to: there the style
// sheet is the page's one <style> element, allowed by its hash
// (InlinePolicy, Chrome.Inline).
package pages
