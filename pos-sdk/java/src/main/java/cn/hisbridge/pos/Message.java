package cn.hisbridge.pos;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A message of docs/pos-protocol.md §4: {@code COMMAND[|key=value]*}. Values never contain
 * {@code |} or control characters ({@link #clean} removes them); a key with an empty value is
 * the same as a key left out; unknown keys are ignored by the reader.
 */
public final class Message {
    public final String command;
    private final Map<String, String> fields = new LinkedHashMap<>();

    public Message(String command) {
        this.command = command;
    }

    /** Adds a field; null or empty values are left out (§4.5.1: both mean absent). */
    public Message put(String key, Object value) {
        if (value != null) {
            String v = clean(String.valueOf(value));
            if (!v.isEmpty()) {
                fields.put(key, v);
            }
        }
        return this;
    }

    /** The value, or null when absent or empty. */
    public String get(String key) {
        String v = fields.get(key);
        return v == null || v.isEmpty() ? null : v;
    }

    /** The value as an unsigned integer, or -1 when absent or not a number. */
    public long getLong(String key) {
        String v = get(key);
        if (v == null || v.length() > 18) {
            return -1;
        }
        for (int i = 0; i < v.length(); i++) {
            if (v.charAt(i) < '0' || v.charAt(i) > '9') {
                return -1;
            }
        }
        return Long.parseLong(v);
    }

    public String encode() {
        StringBuilder b = new StringBuilder(command);
        for (Map.Entry<String, String> e : fields.entrySet()) {
            b.append('|').append(e.getKey()).append('=').append(e.getValue());
        }
        return b.toString();
    }

    /** Parses a payload body; throws {@link IllegalArgumentException} with the reason. */
    public static Message decode(String body) {
        if (body == null || body.isEmpty()) {
            throw new IllegalArgumentException("empty message");
        }
        String[] parts = body.split("\\|", -1);
        String cmd = parts[0];
        if (cmd.isEmpty() || !cmd.matches("[A-Z_]{1,32}")) {
            throw new IllegalArgumentException("bad command " + cmd);
        }
        Message m = new Message(cmd);
        for (int i = 1; i < parts.length; i++) {
            int eq = parts[i].indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("field without key=value: " + parts[i]);
            }
            m.fields.put(parts[i].substring(0, eq), parts[i].substring(eq + 1));
        }
        return m;
    }

    /** Removes what the syntax reserves: {@code |} and control characters. */
    public static String clean(String s) {
        StringBuilder b = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c != '|' && c >= 0x20 && c != 0x7F) {
                b.append(c);
            }
        }
        return b.toString();
    }

    @Override
    public String toString() {
        return encode();
    }
}
