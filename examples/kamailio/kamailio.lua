-- cdr-exporter: KEMI (Lua) routing for kamailio-kemi.cfg, the same logic as kamailio.cfg:
-- a minimal proxy that anchors media in rtpengine and, when a call ends, queues the MOS
-- report that a timer process POSTs to cdr-exporter. Settings live in kamailio-kemi.cfg.

local MOS_QUEUE = "mos_reports"

-- SIP requests
function ksr_request_route()
	if KSR.maxfwd.process_maxfwd(10) < 0 then
		KSR.sl.sl_send_reply(483, "Too Many Hops")
		return 1
	end
	if KSR.sanity.sanity_check(17895, 7) < 0 then
		return 1
	end

	if KSR.is_CANCEL() then
		if KSR.tm.t_check_trans() > 0 then
			-- The call ends before it was answered: report (usually without MOS).
			mos_report("cancel")
			KSR.tm.t_relay()
		end
		return 1
	end

	if KSR.siputils.has_totag() > 0 then
		within_dialog()
		return 1
	end

	KSR.tm.t_check_trans()
	if not KSR.is_INVITE() then
		KSR.sl.sl_send_reply(405, "Method Not Allowed")
		return 1
	end

	KSR.rr.record_route()
	if KSR.textops.has_body_type("application/sdp") > 0 then
		KSR.rtpengine.rtpengine_offer("replace-origin replace-session-connection ICE=remove label=caller")
	end
	KSR.tm.t_on_reply("ksr_mos_reply")
	KSR.tm.t_on_failure("ksr_mos_failure")
	relay()
	return 1
end

function within_dialog()
	if KSR.rr.loose_route() < 0 then
		if KSR.is_ACK() then
			if KSR.tm.t_check_trans() > 0 then
				KSR.tm.t_relay()
			end
		else
			KSR.sl.sl_send_reply(404, "Not here")
		end
		return
	end
	if KSR.is_BYE() then
		mos_report("bye")
	end
	relay()
end

function relay()
	if KSR.tm.t_relay() < 0 then
		KSR.sl.sl_reply_error()
	end
end

function ksr_mos_reply()
	local code = tonumber(KSR.pv.get("$rs")) or 0
	if (code == 183 or (code >= 200 and code < 300))
			and KSR.textops.has_body_type("application/sdp") > 0 then
		KSR.rtpengine.rtpengine_answer("replace-origin replace-session-connection ICE=remove label=callee")
	end
end

function ksr_mos_failure()
	-- A CANCELled call was reported when the CANCEL passed.
	if KSR.tm.t_is_canceled() > 0 then
		return
	end
	mos_report("failure")
end

-- Ends the call in rtpengine, which fills $xavp(mos[0]=>...), and queues the report.
function mos_report(event)
	KSR.pv.unset("$xavp(mos)")
	-- The first assignment creates the xavp; the rest add fields to that same one.
	KSR.pv.sets("$xavp(mos=>call_id)", KSR.pv.get("$ci"))
	KSR.pv.sets("$xavp(mos[0]=>from_tag)", KSR.pv.get("$ft"))
	local to_tag = KSR.pv.get("$tt")
	if to_tag ~= nil and to_tag ~= "" then
		KSR.pv.sets("$xavp(mos[0]=>to_tag)", to_tag)
	end
	KSR.pv.sets("$xavp(mos[0]=>node)", KSR.pv.get("$shv(mos_node)"))
	local tenant = KSR.pv.get("$shv(mos_tenant)")
	if KSR.pv.get("$shv(mos_tenant_by_domain)") == 1 then
		-- The caller's domain, whoever sends the BYE (rr's append_fromtag tells the way).
		if KSR.is_BYE() and KSR.rr.is_direction("upstream") > 0 then
			tenant = KSR.pv.get("$td")
		else
			tenant = KSR.pv.get("$fd")
		end
	end
	if tenant ~= nil and tenant ~= "" then
		KSR.pv.sets("$xavp(mos[0]=>tenant)", tenant)
	end
	KSR.pv.sets("$xavp(mos[0]=>event)", event)
	KSR.pv.sets("$xavp(mos[0]=>mos_A_label)", "caller")
	KSR.pv.sets("$xavp(mos[0]=>mos_B_label)", "callee")

	-- rtpengine_delete() and rtpengine_query() both fill the MOS PVs in 5.6.
	if KSR.rtpengine.rtpengine_delete0() < 0 then
		KSR.warn("MOS: rtpengine_delete failed for call-id " .. KSR.pv.get("$ci") .. "; reporting without MOS\n")
	end

	-- jansson does the escaping (call-ids may contain quotes and backslashes); it has no
	-- KEMI export for encoding, so it is called by name.
	if KSR.x.modf("jansson_xencode", "mos", "$var(mos_json)") < 0 then
		KSR.err("MOS: cannot encode the report for call-id " .. KSR.pv.get("$ci") .. " (not UTF-8?)\n")
		return
	end
	KSR.mqueue.mq_add(MOS_QUEUE, KSR.pv.get("$ci"), KSR.pv.get("$var(mos_json)"))
end

-- Runs in the rtimer process every second: POST queued reports until the queue is empty
-- or one fails. 2xx: delivered. Other 4xx (but 408, 429): the exporter will never take it,
-- logged and dropped. Anything else: back in the queue, and stop until the next tick.
function ksr_mos_drain()
	local url = KSR.pv.get("$shv(mos_url)")
	while KSR.mqueue.mq_fetch(MOS_QUEUE) > 0 do
		local key = KSR.mqueue.mqk_get(MOS_QUEUE)
		local body = KSR.mqueue.mqv_get(MOS_QUEUE)
		local code = KSR.http_client.query_post_hdrs(url, body,
			"Content-Type: application/json", "$var(mos_reply)")
		if code >= 200 and code <= 299 then
			KSR.dbg("MOS: delivered report for call-id " .. key .. "\n")
		elseif code >= 400 and code <= 499 and code ~= 408 and code ~= 429 then
			KSR.err("MOS: exporter refused report (" .. code .. "): " .. body .. "\n")
		else
			KSR.warn("MOS: exporter unreachable (" .. code .. "), keeping report for call-id " .. key .. "\n")
			KSR.mqueue.mq_add(MOS_QUEUE, key, body)
			return
		end
	end
end
