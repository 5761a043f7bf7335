/**
 * Moves focus (and the view) to the element with `id`. Not an in-page link: the location's hash
 * is the console's route, so `#main` must not replace it.
 */
export function jumpTo(id: string): void {
  const target = document.getElementById(id);
  if (target === null) return;
  if (!target.hasAttribute("tabindex")) target.setAttribute("tabindex", "-1");
  target.focus();
  target.scrollIntoView({ block: "start" });
}
