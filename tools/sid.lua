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
--    and every extension, SID elements included.
--
-- Field names: sid.* for the elements (sid.target, sid.session_key.alg, sid.spi,
-- sid.flags.f, sid.flags.t, sid.lla, sid.interim, sid.stop.reason, sid.wakeup.reason,
-- sid.tn, ...), mipgn.* for the Generic Notification messages.

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
