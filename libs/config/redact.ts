/**
 * Hides every credential in a text: the password of each `scheme://user:pass@`
 * URL (a Redis URL's `//:pass@` too) and `password=`/`pwd=`/`token=` query
 * values. Applied to every URL the CLI prints and every server address in an
 * error, so a password is never shown — only the files that hold it (0600)
 * have it.
 */
export function redactUrl(text: string): string {
  return text
    .replace(/(\/\/[^:@/\s]*):([^@/\s]+)@/g, "$1:***@")
    .replace(/([?&](?:password|pwd|pass|token|secret)=)[^&\s]+/gi, "$1***");
}
