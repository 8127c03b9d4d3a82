-- sid.lua: Wireshark dissector for sidmip's Session Inter-Device (SID) mobility formats.
--
--   tshark -X lua_script:tools/sid.lua -r capture.pcap -V
--   wireshark -X lua_script:tools/sid.lua capture.pcap     (or copy it to your plugins folder)
--
-- What it decodes (layouts in RFC-NOTES.md, "SID formats"):
--  * the nine SID elements, each a Critical Vendor/Organization Specific Extension
--    (RFC 3115, type 38) of organization 32473 (preference sid.org_id), inside Mobile IP
--    Registration Requests and Replies. Wireshark 4.0's Mobile IP dissector has no
--    dissector table for CVSE vendor types (only "mip.nvse_ext" for NVSEs), so a
--    post-dissector finds each CVSE through the mip.ext.cvse.vendor_id field and reads
--    the element from the bytes around it;
--  * the wake-up and its acknowledgement, RFC 6098 Generic Notification (type 22) and
--    Generic Notification Acknowledgement (type 23). Wireshark 4.0 names these types, but
--    its Mobile IP dissector claims them on port 434 without decoding anything (so no
--    heuristic dissector gets a turn); the same post-dissector decodes the UDP payload
--    (udp.payload) of such a datagram when no mip.type field was produced: the fixed part
--    and every extension, SID elements included;
--  * the device-to-device negotiation (RFC-NOTES.md, "SID device-to-device negotiation",
--    4.1-4.7): Offer, Accept, Refuse, Session Key and Confirm on UDP 4343 (preference
--    sidneg.port), also found on any UDP port by a heuristic that claims a datagram only
--    when its size is exactly the one its header and length fields announce. Every read
--    is bounded: a truncated or garbled datagram gets expert errors, never a Lua error.
--
-- Field names: sid.* for the elements (sid.target, sid.session_key.alg, sid.spi,
-- sid.flags.f, sid.flags.t, sid.lla, sid.interim, sid.stop.reason, sid.wakeup.reason,
-- sid.tn, ...), mipgn.* for the Generic Notification messages, sidneg.* for the
-- negotiation: sidneg.version, sidneg.type, sidneg.mode, sidneg.reserved,
-- sidneg.nonce_i, sidneg.nonce_r, sidneg.timestamp, sidneg.role, sidneg.init_id_len,
-- sidneg.resp_id_len, sidneg.init_id, sidneg.resp_id, sidneg.offer_secret,
-- sidneg.hpke.enc, sidneg.hpke.ct, sidneg.hpke.tag, sidneg.terms.flags, sidneg.terms.f,
-- sidneg.terms.t, sidneg.terms.reserved, sidneg.terms.lla_len, sidneg.terms.lifetime,
-- sidneg.terms.tn, sidneg.terms.agent, sidneg.terms.interim, sidneg.terms.lla (Ethernet),
-- sidneg.terms.lla_bytes (other lengths), sidneg.refuse.code, sidneg.refuse.reserved,
-- sidneg.key.alg, sidneg.key.len, sidneg.key.data, sidneg.body, sidneg.mac; expert
-- items sidneg.malformed (error), sidneg.zero_lifetime (warning), sidneg.reserved_set
-- (note).

local DEFAULT_ORG = 32473

------------------------------------------------------------------------------------------
-- SID elements
------------------------------------------------------------------------------------------

local sid = Proto("sid", "Session Inter-Device mobility (SID)")
sid.prefs.org_id = Pref.uint("Organization number", DEFAULT_ORG,
    "Vendor/Org-ID (IANA Private Enterprise Number) of the SID CVSEs; 32473 is RFC 5612's")

local VT = {
    TARGET = 1, SESSION_KEY = 2, SPI = 3, FLAGS = 4, LLA = 5,
    INTERIM = 6, STOP = 7, WAKE_UP = 8, TN = 9,
}
local vendor_types = {
    [1] = "Target Address", [2] = "Encrypted Session Key", [3] = "Session SPI",
    [4] = "Transfer Flags", [5] = "Link-Layer Address", [6] = "Interim Address",
    [7] = "Stop-Transfer Demand", [8] = "Wake-Up", [9] = "Transferring Node Address",
}
local key_algorithms = {
    [1] = "AES-256 key wrap with padding (RFC 5649), HKDF-SHA256 key",
    [2] = "HPKE base X25519/HKDF-SHA256/AES-128-GCM (RFC 9180)",
}
local hardware_types = { [1] = "Ethernet" }
local stop_reasons = {
    [0] = "Unspecified", [1] = "Session ended", [2] = "Link-layer address changed",
    [3] = "Override", [4] = "Missed wake-up",
}
local wakeup_reasons = {
    [0] = "Binding expired", [1] = "Ended by renewal with lifetime 0",
    [2] = "Stop-transfer demand", [3] = "Revoked by administrator",
}

local pf = {
    vendor_type  = ProtoField.uint16("sid.vendor_type", "SID element type", base.DEC, vendor_types),
    length       = ProtoField.uint16("sid.length", "CVSE length", base.DEC),
    target       = ProtoField.ipv4("sid.target", "Target Node"),
    key_alg      = ProtoField.uint8("sid.session_key.alg", "Key protection", base.DEC, key_algorithms),
    key_data     = ProtoField.bytes("sid.session_key.data", "Encrypted session key"),
    hpke_enc     = ProtoField.bytes("sid.session_key.hpke_enc", "HPKE encapsulated key (enc)"),
    hpke_ct      = ProtoField.bytes("sid.session_key.hpke_ct", "HPKE ciphertext"),
    spi          = ProtoField.uint32("sid.spi", "Session SPI", base.HEX_DEC),
    flags        = ProtoField.uint8("sid.flags", "Transfer flags", base.HEX),
    flag_f       = ProtoField.bool("sid.flags.f", "F: further transfer permitted", 8, nil, 0x80),
    flag_t       = ProtoField.bool("sid.flags.t", "T: reverse path tunnelled through the Agent", 8, nil, 0x40),
    flag_res     = ProtoField.uint8("sid.flags.reserved", "Reserved flags", base.HEX, nil, 0x3f),
    reserved     = ProtoField.uint8("sid.reserved", "Reserved", base.HEX),
    hwtype       = ProtoField.uint16("sid.lla.hwtype", "Hardware type", base.DEC, hardware_types),
    lla          = ProtoField.ether("sid.lla", "Transferring Node link-layer address"),
    lla_bytes    = ProtoField.bytes("sid.lla.bytes", "Transferring Node link-layer address"),
    interim      = ProtoField.ipv4("sid.interim", "Interim address"),
    stop_reason  = ProtoField.uint8("sid.stop.reason", "Stop-transfer reason", base.DEC, stop_reasons),
    wake_reason  = ProtoField.uint8("sid.wakeup.reason", "Wake-up reason", base.DEC, wakeup_reasons),
    tn           = ProtoField.ipv4("sid.tn", "Transferring Node"),
}
sid.fields = pf

local ex = {
    malformed = ProtoExpert.new("sid.malformed", "Malformed SID element",
        expert.group.MALFORMED, expert.severity.ERROR),
    unknown = ProtoExpert.new("sid.unknown_type", "Unknown SID element type (agents answer 140)",
        expert.group.UNDECODED, expert.severity.WARN),
    duplicate = ProtoExpert.new("sid.duplicate", "SID element repeated (agents answer 134)",
        expert.group.PROTOCOL, expert.severity.WARN),
    reserved = ProtoExpert.new("sid.reserved_set", "Reserved bits set (ignored on receipt)",
        expert.group.PROTOCOL, expert.severity.NOTE),
    after_auth = ProtoExpert.new("sid.after_auth",
        "SID element after the Mobile-Home Authentication Extension (not authenticated)",
        expert.group.SECURITY, expert.severity.WARN),
}
sid.experts = { ex.malformed, ex.unknown, ex.duplicate, ex.reserved, ex.after_auth }

local function ipv4_text(tvb, off)
    return string.format("%d.%d.%d.%d", tvb(off, 1):uint(), tvb(off + 1, 1):uint(),
        tvb(off + 2, 1):uint(), tvb(off + 3, 1):uint())
end

-- A unicast IPv4 address: not 0.0.0.0, 255.255.255.255 or 224.0.0.0/4.
local function unicast(tvb, off)
    local a = tvb(off, 4):uint()
    return a ~= 0 and a ~= 0xffffffff and (a < 0xe0000000 or a >= 0xf0000000)
end

local function bad(item, pinfo, why)
    item:add_proto_expert_info(ex.malformed, "Malformed SID element: " .. why)
    return nil
end

local function code_pair(t, tvb, v, pinfo, field)
    t:add(field, tvb(v, 1))
    local r = t:add(pf.reserved, tvb(v + 1, 1))
    if tvb(v + 1, 1):uint() ~= 0 then r:add_proto_expert_info(ex.reserved) end
    return tvb(v, 1):uint()
end

-- Decodes the value of SID element `vt` at tvb[v .. v+len) under subtree `t`; returns a
-- short summary for the Info column, or nil when the value is malformed.
local function decode_value(t, tvb, v, len, vt, pinfo)
    if vt == VT.TARGET or vt == VT.INTERIM or vt == VT.TN then
        if len ~= 4 then return bad(t, pinfo, "address is 4 bytes") end
        local field = (vt == VT.TARGET and pf.target) or (vt == VT.INTERIM and pf.interim) or pf.tn
        local item = t:add(field, tvb(v, 4))
        if not unicast(tvb, v) then return bad(item, pinfo, "not a unicast address") end
        local text = ipv4_text(tvb, v)
        t:append_text(": " .. text)
        if vt == VT.TARGET then return "to " .. text end
        if vt == VT.TN then return "for " .. text end
        return "interim " .. text
    elseif vt == VT.SESSION_KEY then
        if len < 3 then return bad(t, pinfo, "needs algorithm, reserved and data") end
        local alg = tvb(v, 1):uint()
        t:add(pf.key_alg, tvb(v, 1))
        local r = t:add(pf.reserved, tvb(v + 1, 1))
        if tvb(v + 1, 1):uint() ~= 0 then r:add_proto_expert_info(ex.reserved) end
        local n = len - 2
        local data = t:add(pf.key_data, tvb(v + 2, n))
        t:append_text(string.format(": %s, %d bytes", key_algorithms[alg] or ("algorithm " .. alg), n))
        if alg == 1 then
            if n < 24 or n % 8 ~= 0 then
                return bad(data, pinfo, "wrapped key must be a multiple of 8 bytes, at least 24")
            end
        elseif alg == 2 then
            if n < 64 then return bad(data, pinfo, "HPKE output must be at least 64 bytes") end
            data:add(pf.hpke_enc, tvb(v + 2, 32))
            data:add(pf.hpke_ct, tvb(v + 34, n - 32))
        end
        return "key"
    elseif vt == VT.SPI then
        if len ~= 4 then return bad(t, pinfo, "SPI is 4 bytes") end
        local item = t:add(pf.spi, tvb(v, 4))
        local spi = tvb(v, 4):uint()
        if spi < 256 then return bad(item, pinfo, "SPI 0-255 is reserved") end
        t:append_text(string.format(": 0x%08x", spi))
        return string.format("SPI 0x%x", spi)
    elseif vt == VT.FLAGS then
        if len ~= 2 then return bad(t, pinfo, "Transfer Flags is 2 bytes") end
        local flags = tvb(v, 1):uint()
        local ft = t:add(pf.flags, tvb(v, 1))
        ft:add(pf.flag_f, tvb(v, 1))
        ft:add(pf.flag_t, tvb(v, 1))
        local fr = ft:add(pf.flag_res, tvb(v, 1))
        if flags % 64 ~= 0 then fr:add_proto_expert_info(ex.reserved) end
        local r = t:add(pf.reserved, tvb(v + 1, 1))
        if tvb(v + 1, 1):uint() ~= 0 then r:add_proto_expert_info(ex.reserved) end
        local f = flags >= 128
        local tun = (flags % 128) >= 64
        local text = (f and "F" or "-") .. (tun and "T" or "-")
        t:append_text(": " .. text)
        return "flags " .. text
    elseif vt == VT.LLA then
        if len < 3 then return bad(t, pinfo, "needs a hardware type and an address") end
        local hw = tvb(v, 2):uint()
        t:add(pf.hwtype, tvb(v, 2))
        local n = len - 2
        if hw == 0 then return bad(t, pinfo, "hardware type 0 is reserved") end
        if hw == 1 then
            local item = t:add(pf.lla, tvb(v + 2, n == 6 and 6 or n))
            if n ~= 6 then return bad(item, pinfo, "an Ethernet address is 6 bytes") end
            if tvb(v + 2, 1):uint() % 2 == 1 then return bad(item, pinfo, "group address") end
            if tvb(v + 2, 4):uint() == 0 and tvb(v + 6, 2):uint() == 0 then
                return bad(item, pinfo, "all-zero address")
            end
            t:append_text(": " .. tostring(tvb(v + 2, 6):ether()))
        else
            local item = t:add(pf.lla_bytes, tvb(v + 2, n))
            if n > 255 then return bad(item, pinfo, "longer than 255 bytes") end
        end
        return "lla"
    elseif vt == VT.STOP then
        if len ~= 2 then return bad(t, pinfo, "Stop-Transfer Demand is 2 bytes") end
        local r = code_pair(t, tvb, v, pinfo, pf.stop_reason)
        t:append_text(": " .. (stop_reasons[r] or ("reason " .. r)))
        return "STOP (" .. (stop_reasons[r] or r) .. ")"
    elseif vt == VT.WAKE_UP then
        if len ~= 2 then return bad(t, pinfo, "Wake-Up is 2 bytes") end
        local r = code_pair(t, tvb, v, pinfo, pf.wake_reason)
        t:append_text(": " .. (wakeup_reasons[r] or ("reason " .. r)))
        return "WAKE-UP (" .. (wakeup_reasons[r] or r) .. ")"
    end
    t:add_proto_expert_info(ex.unknown)
    return nil
end

-- Decodes one SID CVSE whose first byte (type 38) is at tvb[off]; `total` is the whole
-- extension's length. `seen` tracks repeated types; `authenticated` is false for an
-- element after the Mobile-Home Authentication Extension.
local function add_element(tree, tvb, off, total, pinfo, seen, authenticated)
    local vt = tvb(off + 8, 2):uint()
    local t = tree:add(sid, tvb(off, total), "SID " .. (vendor_types[vt] or ("element " .. vt)))
    t:add(pf.length, tvb(off + 2, 2))
    t:add(pf.vendor_type, tvb(off + 8, 2))
    if seen[vt] then t:add_proto_expert_info(ex.duplicate) end
    seen[vt] = true
    if not authenticated then t:add_proto_expert_info(ex.after_auth) end
    return decode_value(t, tvb, off + 10, total - 10, vt, pinfo)
end

------------------------------------------------------------------------------------------
-- RFC 6098 Generic Notification (22) and Acknowledgement (23), the wake-up carriers
------------------------------------------------------------------------------------------

local gn = Proto("mipgn", "Mobile IP Generic Notification (RFC 6098)")

local gn_types = { [22] = "Generic Notification", [23] = "Generic Notification Acknowledgement" }
local directions = {
    [0] = "Home agent to mobile node", [1] = "Home agent to foreign agent",
    [2] = "Mobile node to home agent", [3] = "Mobile node to foreign agent",
    [4] = "Foreign agent to mobile node", [5] = "Foreign agent to home agent",
}
local ext_types = {
    [32] = "Mobile-Home Authentication Extension", [33] = "Mobile-Foreign Authentication Extension",
    [34] = "Foreign-Home Authentication Extension",
    [38] = "Critical Vendor/Organization Specific Extension",
    [131] = "Mobile Node NAI Extension", [134] = "Normal Vendor/Organization Specific Extension",
}

local gf = {
    type     = ProtoField.uint8("mipgn.type", "Message type", base.DEC, gn_types),
    md       = ProtoField.uint8("mipgn.md", "Message direction (MD)", base.DEC, directions),
    reserved = ProtoField.uint16("mipgn.reserved", "Reserved", base.HEX),
    code     = ProtoField.uint8("mipgn.code", "Code", base.DEC, { [0] = "Success" }),
    ack_res  = ProtoField.uint8("mipgn.ack_reserved", "Reserved", base.HEX),
    homeaddr = ProtoField.ipv4("mipgn.homeaddr", "Home address"),
    haaddr   = ProtoField.ipv4("mipgn.haaddr", "Home agent address"),
    coa      = ProtoField.ipv4("mipgn.coa", "Care-of address"),
    ident    = ProtoField.uint64("mipgn.ident", "Identification", base.HEX),
    ext_type = ProtoField.uint8("mipgn.ext.type", "Extension type", base.DEC, ext_types),
    ext_len  = ProtoField.uint16("mipgn.ext.len", "Extension length", base.DEC),
    spi      = ProtoField.uint32("mipgn.auth.spi", "SPI", base.HEX),
    auth     = ProtoField.bytes("mipgn.auth.auth", "Authenticator"),
    org      = ProtoField.uint32("mipgn.vendor.org", "Vendor/Org-ID", base.DEC),
    vtype    = ProtoField.uint16("mipgn.vendor.type", "Vendor type", base.DEC),
    value    = ProtoField.bytes("mipgn.vendor.value", "Vendor value"),
    data     = ProtoField.bytes("mipgn.ext.data", "Extension data"),
}
gn.fields = gf

local gn_bad = ProtoExpert.new("mipgn.bad_length", "Extension length points past the message",
    expert.group.MALFORMED, expert.severity.ERROR)
local gn_short = ProtoExpert.new("mipgn.short", "Shorter than the 24-byte fixed part",
    expert.group.MALFORMED, expert.severity.ERROR)
gn.experts = { gn_bad, gn_short }

-- Decodes a Generic Notification or its Acknowledgement held by `tvb` (the UDP payload).
local function dissect_gn(tvb, pinfo, tree)
    local len = tvb:len()
    local t = tvb(0, 1):uint()
    pinfo.cols.protocol = "MIP GN"
    pinfo.cols.info = gn_types[t] or ("type " .. t)
    local root = tree:add(gn, tvb(), "Mobile IP " .. (gn_types[t] or "notification") .. " (RFC 6098)")
    root:add(gf.type, tvb(0, 1))
    if len < 24 then
        root:add_proto_expert_info(gn_short)
        return
    end
    root:add(gf.md, tvb(1, 1))
    if t == 22 then
        root:add(gf.reserved, tvb(2, 2))
    else
        root:add(gf.code, tvb(2, 1))
        root:add(gf.ack_res, tvb(3, 1))
        pinfo.cols.info:append(", code " .. tvb(2, 1):uint())
    end
    root:add(gf.homeaddr, tvb(4, 4))
    root:add(gf.haaddr, tvb(8, 4))
    root:add(gf.coa, tvb(12, 4))
    root:add(gf.ident, tvb(16, 8))
    pinfo.cols.info:append(", home " .. ipv4_text(tvb, 4))

    local org = sid.prefs.org_id
    local off = 24
    local seen = {}
    local authenticated = true
    while off < len do
        local et = tvb(off, 1):uint()
        local hdr, elen
        if et == 38 then
            if off + 4 > len then
                root:add_proto_expert_info(gn_bad)
                break
            end
            hdr, elen = 4, tvb(off + 2, 2):uint()
        else
            if off + 2 > len then
                root:add_proto_expert_info(gn_bad)
                break
            end
            hdr, elen = 2, tvb(off + 1, 1):uint()
        end
        local total = hdr + elen
        if off + total > len then
            local e = root:add(gf.ext_type, tvb(off, 1))
            e:add_proto_expert_info(gn_bad)
            break
        end
        local et_tree = root:add(gn, tvb(off, total), ext_types[et] or ("Extension " .. et))
        et_tree:add(gf.ext_type, tvb(off, 1))
        et_tree:add(gf.ext_len, tvb(off + hdr - (et == 38 and 2 or 1), et == 38 and 2 or 1))
        if (et == 32 or et == 33 or et == 34) and elen >= 4 then
            et_tree:add(gf.spi, tvb(off + 2, 4))
            if elen > 4 then et_tree:add(gf.auth, tvb(off + 6, elen - 4)) end
            if et == 32 then authenticated = false end
        elseif et == 38 and elen >= 6 then
            local o = tvb(off + 4, 4):uint()
            if o == org then
                local s = add_element(et_tree, tvb, off, total, pinfo, seen, authenticated)
                if s then pinfo.cols.info:append(" [SID " .. s .. "]") end
            else
                et_tree:add(gf.org, tvb(off + 4, 4))
                et_tree:add(gf.vtype, tvb(off + 8, 2))
                if elen > 6 then et_tree:add(gf.value, tvb(off + 10, elen - 6)) end
            end
        elseif et == 134 and elen >= 8 then
            et_tree:add(gf.org, tvb(off + 4, 4))
            et_tree:add(gf.vtype, tvb(off + 8, 2))
            if elen > 8 then et_tree:add(gf.value, tvb(off + 10, elen - 8)) end
        elseif elen > 0 then
            et_tree:add(gf.data, tvb(off + hdr, elen))
        end
        off = off + total
    end
end

------------------------------------------------------------------------------------------
-- The post-dissector: SID elements inside Wireshark's Mobile IP dissection, and the
-- Generic Notification messages Wireshark 4.0 leaves undissected
------------------------------------------------------------------------------------------

local f_cvse_org = Field.new("mip.ext.cvse.vendor_id")
local f_auth_spi = Field.new("mip.auth.spi")
local f_mip_type = Field.new("mip.type")
local f_udp_src = Field.new("udp.srcport")
local f_udp_dst = Field.new("udp.dstport")
local f_udp_payload = Field.new("udp.payload")

-- SID CVSEs found through Wireshark's mip.ext.cvse.vendor_id fields.
local function registration_elements(tree, pinfo)
    local orgs = { f_cvse_org() }
    if #orgs == 0 then return end
    local org = sid.prefs.org_id
    -- Offset of the first Mobile-Home Authentication Extension's SPI, if any: elements
    -- after it are not covered by the sender's authenticator.
    local auth_at = nil
    for _, s in ipairs({ f_auth_spi() }) do
        if auth_at == nil or s.offset < auth_at then auth_at = s.offset end
    end
    local root = nil
    local seen = {}
    local summary = {}
    for _, fi in ipairs(orgs) do
        local src = fi.source
        -- The org id sits 4 bytes into the CVSE (type, reserved, 16-bit length).
        local off = fi.offset - 4
        if fi.value == org and src ~= nil and off >= 0 and src:len() >= off + 10 then
            local total = 4 + src(off + 2, 2):uint()
            if total >= 10 and off + total <= src:len() then
                root = root or tree:add(sid, src(off, total))
                local s = add_element(root, src, off, total, pinfo, seen,
                    auth_at == nil or off < auth_at)
                if s then summary[#summary + 1] = s end
            end
        end
    end
    if root ~= nil and #summary > 0 then
        pinfo.cols.info:append(" [SID " .. table.concat(summary, ", ") .. "]")
    end
end

function sid.dissector(tvb, pinfo, tree)
    registration_elements(tree, pinfo)
    -- Types 22/23 on port 434, when nothing else decoded them as Mobile IP.
    if f_mip_type() ~= nil then return end
    local payload = f_udp_payload()
    local sport, dport = f_udp_src(), f_udp_dst()
    if payload == nil or sport == nil or dport == nil then return end
    if sport.value ~= 434 and dport.value ~= 434 then return end
    local src = payload.source
    if src == nil or payload.len < 1 or payload.offset + payload.len > src:len() then return end
    local t = src(payload.offset, 1):uint()
    if t ~= 22 and t ~= 23 then return end
    dissect_gn(src(payload.offset, payload.len):tvb(), pinfo, tree)
end

register_postdissector(sid)

------------------------------------------------------------------------------------------
-- SID device-to-device negotiation (UDP 4343; RFC-NOTES.md, "SID device-to-device
-- negotiation", 4.1-4.7): Offer, Accept, Refuse, Session Key, Confirm
------------------------------------------------------------------------------------------

local neg = Proto("sidneg", "SID device-to-device negotiation")
local NEG_PORT = 4343
neg.prefs.port = Pref.uint("UDP port", NEG_PORT,
    "Port of the negotiation (4343 is sidmip's choice, not an IANA assignment)")

local NEG_HEADER, NEG_NONCE, NEG_MAC, NEG_TERMS = 20, 16, 32, 16
local NEG_MAX_ID, NEG_MAX_LLA, NEG_SECRET = 64, 20, 80
local neg_types = { [1] = "Offer", [2] = "Accept", [3] = "Refuse", [4] = "Session Key", [5] = "Confirm" }
local neg_modes = { [1] = "Pre-shared secret", [2] = "Public keys (X25519, HPKE)" }
local neg_roles = { [1] = "Transferring Node", [2] = "Target Node" }
local refuse_codes = {
    [1] = "Declined", [2] = "Busy", [3] = "Clock skew", [4] = "Bad terms", [5] = "No answer",
}
-- Encrypted Key length per Algorithm (= Mode): RFC 5649 wrap of 32 octets, HPKE enc+ct+tag.
local neg_key_lens = { [1] = 40, [2] = 80 }

local nf = {
    version     = ProtoField.uint8("sidneg.version", "Version", base.DEC),
    type        = ProtoField.uint8("sidneg.type", "Message type", base.DEC, neg_types),
    mode        = ProtoField.uint8("sidneg.mode", "Mode", base.DEC, neg_modes),
    reserved    = ProtoField.uint8("sidneg.reserved", "Reserved", base.HEX),
    nonce_i     = ProtoField.bytes("sidneg.nonce_i", "Initiator nonce"),
    nonce_r     = ProtoField.bytes("sidneg.nonce_r", "Responder nonce"),
    timestamp   = ProtoField.absolute_time("sidneg.timestamp", "Timestamp (NTP)", base.UTC),
    role        = ProtoField.uint8("sidneg.role", "Initiator's role", base.DEC, neg_roles),
    init_id_len = ProtoField.uint8("sidneg.init_id_len", "Initiator identity length", base.DEC),
    resp_id_len = ProtoField.uint8("sidneg.resp_id_len", "Responder identity length", base.DEC),
    init_id     = ProtoField.string("sidneg.init_id", "Initiator identity", base.UNICODE),
    resp_id     = ProtoField.string("sidneg.resp_id", "Responder identity", base.UNICODE),
    secret      = ProtoField.bytes("sidneg.offer_secret", "Offer Secret (HPKE auth mode)"),
    hpke_enc    = ProtoField.bytes("sidneg.hpke.enc", "HPKE encapsulated key (enc)"),
    hpke_ct     = ProtoField.bytes("sidneg.hpke.ct", "HPKE ciphertext"),
    hpke_tag    = ProtoField.bytes("sidneg.hpke.tag", "AES-128-GCM tag"),
    t_flags     = ProtoField.uint8("sidneg.terms.flags", "Terms flags", base.HEX),
    t_f         = ProtoField.bool("sidneg.terms.f", "F: further transfer permitted (asked for, in a Target's Offer)", 8, nil, 0x80),
    t_t         = ProtoField.bool("sidneg.terms.t", "T: reverse path tunnelled through the Agent", 8, nil, 0x40),
    t_res       = ProtoField.uint8("sidneg.terms.reserved", "Reserved flags", base.HEX, nil, 0x3f),
    t_lla_len   = ProtoField.uint8("sidneg.terms.lla_len", "Link-layer address length", base.DEC),
    t_lifetime  = ProtoField.uint16("sidneg.terms.lifetime", "Lifetime (seconds)", base.DEC),
    t_tn        = ProtoField.ipv4("sidneg.terms.tn", "Transferring Node address"),
    t_agent     = ProtoField.ipv4("sidneg.terms.agent", "Agent address"),
    t_interim   = ProtoField.ipv4("sidneg.terms.interim", "Interim address"),
    t_lla       = ProtoField.ether("sidneg.terms.lla", "Transferring Node link-layer address"),
    t_lla_bytes = ProtoField.bytes("sidneg.terms.lla_bytes", "Transferring Node link-layer address"),
    code        = ProtoField.uint8("sidneg.refuse.code", "Refuse code", base.DEC, refuse_codes),
    code_res    = ProtoField.uint24("sidneg.refuse.reserved", "Reserved", base.HEX),
    key_alg     = ProtoField.uint8("sidneg.key.alg", "Key protection", base.DEC, key_algorithms),
    key_len     = ProtoField.uint16("sidneg.key.len", "Encrypted key length", base.DEC),
    key         = ProtoField.bytes("sidneg.key.data", "Encrypted session key"),
    body        = ProtoField.bytes("sidneg.body", "Undecoded body"),
    mac         = ProtoField.bytes("sidneg.mac", "MAC (HMAC-SHA256)"),
}
neg.fields = nf

local nx = {
    malformed = ProtoExpert.new("sidneg.malformed", "Malformed SID negotiation message",
        expert.group.MALFORMED, expert.severity.ERROR),
    reserved = ProtoExpert.new("sidneg.reserved_set", "Reserved bits set (ignored on receipt)",
        expert.group.PROTOCOL, expert.severity.NOTE),
    lifetime = ProtoExpert.new("sidneg.zero_lifetime", "Lifetime 0 is not valid in offered or final terms",
        expert.group.PROTOCOL, expert.severity.WARN),
}
neg.experts = { nx.malformed, nx.reserved, nx.lifetime }

local function neg_bad(item, why)
    item:add_proto_expert_info(nx.malformed, "Malformed SID negotiation message: " .. why)
end

-- Adds a Reserved field; notes it when not zero.
local function neg_reserved(tree, field, range)
    local item = tree:add(field, range)
    if range:uint() ~= 0 then item:add_proto_expert_info(nx.reserved) end
end

local function short_hex(range)
    local n = math.min(range:len(), 4)
    return tostring(range:range(0, n):bytes()):lower() .. (range:len() > n and "..." or "")
end

-- A cursor over the body (octets 20 up to the MAC) that never reads past `limit`: a read
-- that would pass it flags the message (once) and returns nil from then on.
local function neg_reader(tvb, limit, root)
    local r = { off = NEG_HEADER, ok = true }
    function r.take(n, what)
        if not r.ok then return nil end
        if r.off + n > limit then
            r.ok = false
            neg_bad(root, string.format("truncated at %s: %d octets needed, %d left before the MAC",
                what, n, math.max(limit - r.off, 0)))
            return nil
        end
        local range = tvb(r.off, n)
        r.off = r.off + n
        return range
    end
    function r.stop(why)
        if r.ok then neg_bad(root, why) end
        r.ok = false
    end
    return r
end

-- HPKE output enc (32) || ciphertext || tag (16) under `item`.
local function add_hpke(item, range)
    local n = range:len()
    if n < 48 then return end
    item:add(nf.hpke_enc, range:range(0, 32))
    if n > 48 then item:add(nf.hpke_ct, range:range(32, n - 48)) end
    item:add(nf.hpke_tag, range:range(n - 16, 16))
end

local function zero_addr(range) return range:uint() == 0 end

-- Session Terms (4.2) at the cursor; returns a summary, or nil when cut short.
local function neg_terms(tree, r, label, final)
    local fixed = r.take(NEG_TERMS, "the session terms")
    if not fixed then return nil end
    local t = tree:add(neg, fixed, label)
    local flags = fixed:range(0, 1)
    local ft = t:add(nf.t_flags, flags)
    ft:add(nf.t_f, flags)
    ft:add(nf.t_t, flags)
    local fr = ft:add(nf.t_res, flags)
    local f = flags:uint()
    if f % 64 ~= 0 then fr:add_proto_expert_info(nx.reserved) end
    local lla_len = fixed:range(1, 1):uint()
    local ll = t:add(nf.t_lla_len, fixed:range(1, 1))
    local life = t:add(nf.t_lifetime, fixed:range(2, 2))
    local lifetime = fixed:range(2, 2):uint()
    if lifetime == 0 then life:add_proto_expert_info(nx.lifetime) end
    local tn = t:add(nf.t_tn, fixed:range(4, 4))
    if zero_addr(fixed:range(4, 4)) then tn:append_text(final and " (missing)" or " (any session held)") end
    local agent = t:add(nf.t_agent, fixed:range(8, 4))
    if zero_addr(fixed:range(8, 4)) then agent:append_text(" (none: same subnet)") end
    local interim = t:add(nf.t_interim, fixed:range(12, 4))
    if zero_addr(fixed:range(12, 4)) then interim:append_text(" (none)") end
    local function addr(o, none)
        return zero_addr(fixed:range(o, 4)) and none or tostring(fixed:range(o, 4):ipv4())
    end
    local text = string.format("TN %s, Agent %s, %d s, %s%s", addr(4, "any"), addr(8, "none"),
        lifetime, f >= 128 and "F" or "-", (f % 128) >= 64 and "T" or "-")
    if not zero_addr(fixed:range(12, 4)) then text = text .. ", interim " .. addr(12, "") end
    if lla_len > NEG_MAX_LLA then
        r.stop(string.format("link-layer address length %d is over %d", lla_len, NEG_MAX_LLA))
        neg_bad(ll, "at most 20 octets")
        return nil
    end
    if lla_len > 0 then
        local lla = r.take(lla_len, "the link-layer address")
        if not lla then return nil end
        t:set_len(NEG_TERMS + lla_len)
        if lla_len == 6 then
            t:add(nf.t_lla, lla)
            text = text .. ", LLA " .. tostring(lla:ether())
        else
            t:add(nf.t_lla_bytes, lla)
        end
    end
    t:append_text(": " .. text)
    return text
end

-- Whether `s` is well-formed UTF-8 (no overlong forms, surrogates or values past U+10FFFF).
local function utf8_valid(s)
    local i, n = 1, #s
    while i <= n do
        local c = s:byte(i)
        local more
        if c < 0x80 then more = 0
        elseif c >= 0xc2 and c <= 0xdf then more = 1
        elseif c >= 0xe0 and c <= 0xef then more = 2
        elseif c >= 0xf0 and c <= 0xf4 then more = 3
        else return false end
        if i + more > n then return false end
        for k = 1, more do
            local b = s:byte(i + k)
            if b < 0x80 or b > 0xbf then return false end
        end
        if more >= 2 then
            local b = s:byte(i + 1)
            if (c == 0xe0 and b < 0xa0) or (c == 0xed and b > 0x9f) or (c == 0xf0 and b < 0x90)
                or (c == 0xf4 and b > 0x8f) then
                return false
            end
        end
        i = i + more + 1
    end
    return true
end

local function neg_id(tree, r, len, field, len_item, what)
    if len == 0 or len > NEG_MAX_ID then
        neg_bad(len_item, what .. " must be 1 to 64 octets")
    end
    if len == 0 then return "?" end
    local range = r.take(len, what)
    if not range then return "?" end
    local item = tree:add_packet_field(field, range, ENC_UTF_8)
    if not utf8_valid(range:raw()) then
        neg_bad(item, what .. " is not UTF-8")
        return "?"
    end
    return range:string(ENC_UTF_8)
end

local function neg_offer(root, r, mode)
    local ts = r.take(8, "the timestamp")
    if ts then root:add_packet_field(nf.timestamp, ts, ENC_TIME_NTP + ENC_BIG_ENDIAN) end
    local role = r.take(1, "the role")
    local lens = r.take(3, "the identity lengths")
    if not (role and lens) then return "Offer" end
    local ri = root:add(nf.role, role)
    if neg_roles[role:uint()] == nil then neg_bad(ri, "unknown role") end
    local li = root:add(nf.init_id_len, lens:range(0, 1))
    local lr = root:add(nf.resp_id_len, lens:range(1, 1))
    neg_reserved(root, nf.reserved, lens:range(2, 1))
    local terms = neg_terms(root, r, "Offered terms", false)
    local from = neg_id(root, r, lens:range(0, 1):uint(), nf.init_id, li, "the initiator identity")
    local to = neg_id(root, r, lens:range(1, 1):uint(), nf.resp_id, lr, "the responder identity")
    if mode == 2 then
        local s = r.take(NEG_SECRET, "the Offer Secret")
        if s then add_hpke(root:add(nf.secret, s), s) end
    end
    return string.format("Offer %s -> %s as %s%s", from, to, neg_roles[role:uint()] or "?",
        terms and (": " .. terms) or "")
end

local function neg_key(root, r, mode)
    local nr = r.take(NEG_NONCE, "the responder nonce")
    if nr then root:add(nf.nonce_r, nr) end
    local head = r.take(4, "the key algorithm and length")
    if not head then return "Session Key" end
    local alg = head:range(0, 1):uint()
    local ai = root:add(nf.key_alg, head:range(0, 1))
    neg_reserved(root, nf.reserved, head:range(1, 1))
    local n = head:range(2, 2):uint()
    local li = root:add(nf.key_len, head:range(2, 2))
    if alg ~= mode then neg_bad(ai, "the Algorithm must equal the Mode") end
    if neg_key_lens[alg] ~= nil and n ~= neg_key_lens[alg] then
        neg_bad(li, string.format("algorithm %d takes %d octets", alg, neg_key_lens[alg]))
    end
    if n > 0 then
        local k = r.take(n, "the encrypted key")
        if k then
            local ki = root:add(nf.key, k)
            if alg == 2 then add_hpke(ki, k) end
        end
    end
    return string.format("Session Key (%s, %d octets)", alg == 1 and "AES key wrap" or
        (alg == 2 and "HPKE" or ("algorithm " .. alg)), n)
end

-- Decodes one negotiation datagram (never raises a Lua error: every read is bounded).
local function dissect_neg(tvb, pinfo, tree)
    local len = tvb:len()
    pinfo.cols.protocol = "SID-NEG"
    local root = tree:add(neg, tvb())
    if len < 4 then
        local fields = { nf.version, nf.type, nf.mode }
        for i = 1, len do root:add(fields[i], tvb(i - 1, 1)) end
        neg_bad(root, string.format("%d octets; the header alone is 20", len))
        pinfo.cols.info = "SID negotiation (truncated)"
        return len
    end
    local version, mt, mode = tvb(0, 1):uint(), tvb(1, 1):uint(), tvb(2, 1):uint()
    local vi = root:add(nf.version, tvb(0, 1))
    local ti = root:add(nf.type, tvb(1, 1))
    local mi = root:add(nf.mode, tvb(2, 1))
    neg_reserved(root, nf.reserved, tvb(3, 1))
    local name = neg_types[mt] or ("type " .. mt)
    root:append_text(", " .. name)
    pinfo.cols.info = "SID " .. name
    if version ~= 1 then neg_bad(vi, "unsupported version (1 is defined)") return len end
    if neg_types[mt] == nil then neg_bad(ti, "unknown message type") return len end
    if neg_modes[mode] == nil then neg_bad(mi, "unknown mode") return len end
    root:append_text(" (" .. neg_modes[mode] .. ")")
    if len < NEG_HEADER + NEG_MAC then
        neg_bad(root, string.format("%d octets; header and MAC alone are %d", len, NEG_HEADER + NEG_MAC))
        if len >= NEG_HEADER then root:add(nf.nonce_i, tvb(4, NEG_NONCE)) end
        return len
    end
    local ni = tvb(4, NEG_NONCE)
    root:add(nf.nonce_i, ni)
    local limit = len - NEG_MAC
    local r = neg_reader(tvb, limit, root)
    local info = name
    if mt == 1 then
        info = neg_offer(root, r, mode)
    elseif mt == 2 then
        local nr = r.take(NEG_NONCE, "the responder nonce")
        if nr then root:add(nf.nonce_r, nr) end
        local terms = neg_terms(root, r, "Final terms", true)
        info = "Accept" .. (terms and (": " .. terms) or "")
    elseif mt == 3 then
        local c = r.take(4, "the code")
        if c then
            root:add(nf.code, c:range(0, 1))
            neg_reserved(root, nf.code_res, c:range(1, 3))
            info = "Refuse: " .. (refuse_codes[c:range(0, 1):uint()] or ("code " .. c:range(0, 1):uint()))
        end
        local ts = r.take(8, "the timestamp")
        if ts then root:add_packet_field(nf.timestamp, ts, ENC_TIME_NTP + ENC_BIG_ENDIAN) end
    elseif mt == 4 then
        info = neg_key(root, r, mode)
    else
        local nr = r.take(NEG_NONCE, "the responder nonce")
        if nr then root:add(nf.nonce_r, nr) end
    end
    if r.ok and r.off < limit then
        root:add(nf.body, tvb(r.off, limit - r.off))
        r.stop(string.format("%d trailing octets before the MAC", limit - r.off))
    end
    root:add(nf.mac, tvb(limit, NEG_MAC))
    pinfo.cols.info = string.format("SID %s [Ni %s]", info, short_hex(ni))
    return len
end

function neg.dissector(tvb, pinfo, tree)
    return dissect_neg(tvb, pinfo, tree)
end

-- The length the header and length fields announce, or nil: the heuristic only claims a
-- datagram whose size matches its own fields exactly.
local function neg_announced_len(tvb)
    local len = tvb:len()
    if len < NEG_HEADER + NEG_MAC then return nil end
    local mt, mode = tvb(1, 1):uint(), tvb(2, 1):uint()
    if tvb(0, 1):uint() ~= 1 or tvb(3, 1):uint() ~= 0 or neg_modes[mode] == nil then return nil end
    if mt == 1 then
        if len < 80 then return nil end
        return 80 + tvb(33, 1):uint() + tvb(29, 1):uint() + tvb(30, 1):uint() + (mode == 2 and NEG_SECRET or 0)
    elseif mt == 2 then
        if len < 84 then return nil end
        return 84 + tvb(37, 1):uint()
    elseif mt == 3 then
        return 64
    elseif mt == 4 then
        if len < 72 then return nil end
        return 72 + tvb(38, 2):uint()
    elseif mt == 5 then
        return 68
    end
    return nil
end

local function neg_heuristic(tvb, pinfo, tree)
    if neg_announced_len(tvb) ~= tvb:len() then return false end
    dissect_neg(tvb, pinfo, tree)
    return true
end

local neg_registered_port = neg.prefs.port
DissectorTable.get("udp.port"):add(neg_registered_port, neg)
neg:register_heuristic("udp", neg_heuristic)

function neg.prefs_changed()
    if neg.prefs.port ~= neg_registered_port then
        DissectorTable.get("udp.port"):remove(neg_registered_port, neg)
        neg_registered_port = neg.prefs.port
        DissectorTable.get("udp.port"):add(neg_registered_port, neg)
    end
end
