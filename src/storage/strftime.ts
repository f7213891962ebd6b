/**
 * Python's `datetime.strftime` as Django applies it to a string `upload_to` (see {@link strftime}),
 * kept apart from the naming rules that use it.
 */

const DAY_NAMES = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTH_NAMES = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];

interface Fields {
  year: number;
  month: number; // 0-11
  day: number;
  hour: number;
  minute: number;
  second: number;
  ms: number;
  wday: number; // 0 = Sunday
  yday: number; // 0-based
  epoch: number;
}

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

function daysInYear(y: number): number {
  return isLeap(y) ? 366 : 365;
}

function fieldsOf(date: Date, utc: boolean): Fields {
  const year = utc ? date.getUTCFullYear() : date.getFullYear();
  const month = utc ? date.getUTCMonth() : date.getMonth();
  const day = utc ? date.getUTCDate() : date.getDate();
  // Day of year from the calendar fields alone, so DST never shifts it.
  const yday = Math.round((Date.UTC(year, month, day) - Date.UTC(year, 0, 1)) / 86_400_000);
  return {
    year,
    month,
    day,
    hour: utc ? date.getUTCHours() : date.getHours(),
    minute: utc ? date.getUTCMinutes() : date.getMinutes(),
    second: utc ? date.getUTCSeconds() : date.getSeconds(),
    ms: utc ? date.getUTCMilliseconds() : date.getMilliseconds(),
    wday: utc ? date.getUTCDay() : date.getDay(),
    yday,
    epoch: Math.floor(date.getTime() / 1000),
  };
}

/** ISO 8601 week-numbering year and week (`%G`, `%V`): the week's Thursday decides the year. */
function isoWeek(f: Fields): { year: number; week: number } {
  const mondayBased = (f.wday + 6) % 7;
  let thursday = f.yday - mondayBased + 3;
  let year = f.year;
  if (thursday < 0) {
    year -= 1;
    thursday += daysInYear(year);
  } else if (thursday >= daysInYear(year)) {
    thursday -= daysInYear(year);
    year += 1;
  }
  return { year, week: Math.floor(thursday / 7) + 1 };
}

type Numeric = { value: number; width: number; pad: "0" | " " };

function numeric(conv: string, f: Fields): Numeric | undefined {
  const hour12 = f.hour % 12 === 0 ? 12 : f.hour % 12;
  switch (conv) {
    case "C":
      return { value: Math.floor(f.year / 100), width: 2, pad: "0" };
    case "d":
      return { value: f.day, width: 2, pad: "0" };
    case "e":
      return { value: f.day, width: 2, pad: " " };
    case "G":
      return { value: isoWeek(f).year, width: 4, pad: "0" };
    case "g":
      return { value: isoWeek(f).year % 100, width: 2, pad: "0" };
    case "H":
      return { value: f.hour, width: 2, pad: "0" };
    case "I":
      return { value: hour12, width: 2, pad: "0" };
    case "j":
      return { value: f.yday + 1, width: 3, pad: "0" };
    case "k":
      return { value: f.hour, width: 2, pad: " " };
    case "l":
      return { value: hour12, width: 2, pad: " " };
    case "M":
      return { value: f.minute, width: 2, pad: "0" };
    case "m":
      return { value: f.month + 1, width: 2, pad: "0" };
    case "S":
      return { value: f.second, width: 2, pad: "0" };
    case "s":
      return { value: f.epoch, width: 1, pad: "0" };
    case "U":
      return { value: Math.floor((f.yday + 7 - f.wday) / 7), width: 2, pad: "0" };
    case "u":
      return { value: f.wday === 0 ? 7 : f.wday, width: 1, pad: "0" };
    case "V":
      return { value: isoWeek(f).week, width: 2, pad: "0" };
    case "W":
      return { value: Math.floor((f.yday + 7 - ((f.wday + 6) % 7)) / 7), width: 2, pad: "0" };
    case "w":
      return { value: f.wday, width: 1, pad: "0" };
    case "Y":
      // glibc prints small years unpadded; CPython >= 3.13 pads %Y/%G to 4 digits. We pad.
      return { value: f.year, width: 4, pad: "0" };
    case "y":
      return { value: f.year % 100, width: 2, pad: "0" };
    default:
      return undefined;
  }
}

/** Composite directives, expanded in the C locale the way glibc does. */
const COMPOSITE: Record<string, string> = {
  c: "%a %b %e %H:%M:%S %Y",
  D: "%m/%d/%y",
  F: "%Y-%m-%d",
  r: "%I:%M:%S %p",
  R: "%H:%M",
  T: "%H:%M:%S",
  x: "%m/%d/%y",
  X: "%H:%M:%S",
};

function text(conv: string, f: Fields): string | undefined {
  switch (conv) {
    case "a":
      return DAY_NAMES[f.wday]!.slice(0, 3);
    case "A":
      return DAY_NAMES[f.wday]!;
    case "b":
    case "h":
      return MONTH_NAMES[f.month]!.slice(0, 3);
    case "B":
      return MONTH_NAMES[f.month]!;
    case "p":
      return f.hour < 12 ? "AM" : "PM";
    case "P":
      return f.hour < 12 ? "am" : "pm";
    case "n":
      return "\n";
    case "t":
      return "\t";
    case "%":
      return "%";
    default:
      return undefined;
  }
}

const E_MODIFIABLE = new Set(["c", "C", "x", "X", "y", "Y"]);
const O_MODIFIABLE = new Set(["d", "e", "H", "I", "m", "M", "S", "u", "U", "V", "w", "W", "y"]);
const DIRECTIVE = /%([-_0^#]*)([0-9]*)([EO:]?)([\s\S])/y;

function render(pattern: string, f: Fields): string {
  let out = "";
  let i = 0;
  while (i < pattern.length) {
    const pct = pattern.indexOf("%", i);
    if (pct === -1) {
      out += pattern.slice(i);
      break;
    }
    out += pattern.slice(i, pct);
    DIRECTIVE.lastIndex = pct;
    const m = DIRECTIVE.exec(pattern);
    if (!m) {
      // A lone trailing "%" (or "%-" etc.) is kept as written, as CPython/glibc do.
      out += pattern.slice(pct);
      break;
    }
    i = DIRECTIVE.lastIndex;
    out += directive(m[0], m[1]!, m[2]!, m[3]!, m[4]!, f);
  }
  return out;
}

function directive(whole: string, flags: string, width: string, modifier: string, conv: string, f: Fields): string {
  // Python itself replaces a bare %f (microseconds) and, for naive datetimes, %z, %:z and %Z with
  // "". Django formats datetime.now(), which is naive.
  if (conv === "f") {
    return flags === "" && width === "" && modifier === "" ? String(f.ms * 1000).padStart(6, "0") : whole;
  }
  if (conv === "z" && (modifier === "" || modifier === ":") && width === "") return "";
  if (conv === "Z" && modifier === "" && width === "") return "";
  // Field widths are not supported: the directive is kept verbatim (glibc would pad it).
  if (width !== "") return whole;
  if (modifier === ":" || (modifier === "E" && !E_MODIFIABLE.has(conv))) return whole;
  if (modifier === "O" && !O_MODIFIABLE.has(conv)) return whole;

  const upper = flags.includes("^");
  const swapCase = flags.includes("#");
  const composite = COMPOSITE[conv];
  if (composite !== undefined) {
    const s = render(composite, f);
    return upper ? s.toUpperCase() : s;
  }
  const t = text(conv, f);
  if (t !== undefined) {
    if (conv === "P") return t; // glibc keeps %P lower-case even with ^.
    if (swapCase && conv === "p") return t.toLowerCase();
    if (upper || (swapCase && "aAbBh".includes(conv))) return t.toUpperCase();
    return t;
  }
  const n = numeric(conv, f);
  if (n === undefined) return whole; // Unknown directive: kept verbatim, like glibc.
  let pad: "0" | " " | "" = n.pad;
  for (const flag of flags) {
    if (flag === "-") pad = "";
    else if (flag === "_") pad = " ";
    else if (flag === "0") pad = "0";
  }
  const digits = String(n.value);
  return pad === "" ? digits : digits.padStart(n.width, pad);
}

/**
 * Python's `datetime.strftime` as Django uses it for a string `upload_to`, in the C locale (English
 * names), on Linux (glibc).
 *
 * Supported: `%a %A %b %B %c %C %d %D %e %f %F %g %G %h %H %I %j %k %l %m %M %n %p %P %r %R %s %S
 * %t %T %u %U %V %w %W %x %X %y %Y %z %:z %Z %%`, the glibc flags `-` (no padding), `_` (pad with
 * spaces), `0` (pad with zeros), `^` (upper case) and `#` (swap case of names), and the `E`/`O`
 * modifiers where glibc accepts them. `%f` is microseconds padded to 6 digits (a `Date` only has
 * milliseconds, so the last three digits are `000`). `%z`, `%:z` and `%Z` are empty, as for
 * Django's naive `datetime.now()`. `%s` is the epoch second of `date`.
 *
 * Unknown directives (e.g. `%Q`), directives with a field width (e.g. `%10Y`) and a trailing `%` are
 * copied verbatim; CPython hands unknown directives to the C library, and glibc copies them too.
 *
 * @param opts.utc format the UTC fields of `date` instead of local time (Django uses local time).
 */
export function strftime(pattern: string, date: Date, opts?: { utc?: boolean }): string {
  if (Number.isNaN(date.getTime())) throw new RangeError("strftime: invalid Date");
  return render(pattern, fieldsOf(date, opts?.utc === true));
}
